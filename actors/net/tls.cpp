#include "switchboard/actors/net/tls.hpp"

#include <string>
#include <system_error>

namespace switchboard::actors::net {

namespace ssl = boost::asio::ssl;

Result<void> load_tls(std::optional<ssl::context>& tls, const std::filesystem::path& cert,
                      const std::filesystem::path& key, std::string_view server) {
  if (cert.empty() && key.empty()) return {};
  const std::string who = std::string(server) + "'s TLS ";
  if (cert.empty() || key.empty())
    return make_error(errc::bad_field, who + "needs both a certificate and its private key; got only the " +
                                           std::string(cert.empty() ? "key" : "certificate"));
  tls.emplace(ssl::context::tls_server);
  tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                   ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::no_compression |
                   ssl::context::single_dh_use);
  auto load = [&](const std::filesystem::path& file, const char* what, auto&& use) -> Result<void> {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(file, ec))
      return make_error(errc::bad_field, who + what + " '" + file.string() + "' is not a readable file");
    try {
      use(file.string());
    } catch (const boost::system::system_error& e) {
      return make_error(errc::bad_field, who + what + " '" + file.string() + "' cannot be used: " + e.code().message());
    }
    return {};
  };
  if (auto ok = load(cert, "certificate", [&](const std::string& f) { tls->use_certificate_chain_file(f); }); !ok) {
    tls.reset();
    return ok;
  }
  // OpenSSL checks here that the key belongs to the certificate.
  auto ok = load(key, "private key", [&](const std::string& f) { tls->use_private_key_file(f, ssl::context::pem); });
  if (!ok) tls.reset();
  return ok;
}

}  // namespace switchboard::actors::net
