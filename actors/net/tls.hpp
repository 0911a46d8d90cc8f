// The TLS context of a server that serves https:// or wss:// (the WebSocket bridge,
// the HTTP API): TLS 1.2 or later, a certificate chain and its private key from PEM
// files.
//
// Internal to the library; it includes Boost.
#pragma once

#include <filesystem>
#include <optional>
#include <string_view>

#include <boost/asio/ssl.hpp>

#include "switchboard/common/error.hpp"

namespace switchboard::actors::net {

/// Both files empty: `tls` stays unset (plain). Both set: `tls` holds a server context
/// with them. Errors (bad_field), naming `server` ("the bridge", "the API") and the
/// file: one file without the other, a file that cannot be read, or cannot be used (not
/// PEM, or a key that does not belong to the certificate).
Result<void> load_tls(std::optional<boost::asio::ssl::context>& tls, const std::filesystem::path& cert,
                      const std::filesystem::path& key, std::string_view server);

}  // namespace switchboard::actors::net
