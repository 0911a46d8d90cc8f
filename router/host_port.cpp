#include "switchboard/router/host_port.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>

namespace switchboard::router {

std::optional<HostPort> parse_host_port(std::string_view text) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::string host(text.substr(0, colon));
  const std::string_view port = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  in6_addr address{};
  if ((inet_pton(AF_INET, host.c_str(), &address) != 1 && inet_pton(AF_INET6, host.c_str(), &address) != 1) ||
      port.empty())
    return std::nullopt;
  if (port == "*") return HostPort{host, 0};
  unsigned value = 0;
  for (char c : port)
    if (c < '0' || c > '9' || (value = value * 10 + static_cast<unsigned>(c - '0')) > 65535) return std::nullopt;
  return HostPort{host, static_cast<std::uint16_t>(value)};
}

std::string format_host_port(const std::string& host, std::uint16_t port) {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

namespace {

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

}  // namespace

std::optional<Authority> parse_authority(std::string_view text) {
  Authority a;
  std::string_view rest;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    a.host = lower(text.substr(0, close + 1));
    rest = text.substr(close + 1);
    for (unsigned char c : a.host.substr(1, a.host.size() - 2))
      if (!std::isxdigit(c) && c != ':' && c != '.') return std::nullopt;
  } else {
    const auto colon = text.find(':');
    a.host = lower(text.substr(0, colon));
    rest = colon == std::string_view::npos ? std::string_view() : text.substr(colon);
    for (unsigned char c : a.host)
      if (!std::isalnum(c) && c != '.' && c != '-' && c != '_') return std::nullopt;
  }
  if (a.host.empty() || a.host == "[]") return std::nullopt;
  if (!rest.empty()) {
    if (rest.front() != ':' || rest.size() < 2 || rest.size() > 6) return std::nullopt;
    rest.remove_prefix(1);
    if (!std::all_of(rest.begin(), rest.end(), [](unsigned char c) { return std::isdigit(c); })) return std::nullopt;
    a.port = std::string(rest);
  }
  return a;
}

bool is_ip_literal(const std::string& host) {
  in6_addr address{};
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    return inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), &address) == 1;
  return inet_pton(AF_INET, host.c_str(), &address) == 1;
}

std::string origin_of(const std::string& scheme, const Authority& a) {
  const bool default_port =
      a.port.empty() || (scheme == "http" && a.port == "80") || (scheme == "https" && a.port == "443");
  return scheme + "://" + a.host + (default_port ? "" : ":" + a.port);
}

Result<std::string> normalise_origin(std::string_view origin) {
  auto bad = [&](const char* why) {
    return make_error(errc::bad_field, "'" + std::string(origin) + "' is not an origin (" + why +
                                           "): give scheme://host[:port], for example https://chat.example.com");
  };
  const auto sep = origin.find("://");
  if (sep == std::string_view::npos) return bad("no scheme");
  const std::string scheme = lower(origin.substr(0, sep));
  if (scheme != "http" && scheme != "https") return bad("the scheme must be http or https");
  std::string_view rest = origin.substr(sep + 3);
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.find_first_of("/?#@") != std::string_view::npos) return bad("only a scheme, a host and a port");
  auto authority = parse_authority(rest);
  if (!authority) return bad("no valid host");
  return origin_of(scheme, *authority);
}

Result<HttpUrl> parse_http_url(std::string_view url) {
  auto bad = [&](const std::string& why) {
    return make_error(errc::bad_field, "\"" + std::string(url) + "\" is not an http:// or https:// URL: " + why);
  };
  HttpUrl out;
  std::string_view rest;
  if (url.substr(0, 7) == "http://") {
    rest = url.substr(7);
  } else if (url.substr(0, 8) == "https://") {
    out.tls = true;
    rest = url.substr(8);
  } else {
    return bad("it must start with http:// or https://");
  }
  for (char ch : url)
    if (static_cast<unsigned char>(ch) <= 0x20 || ch == 0x7f) return bad("it has a space or a control character");
  if (url.find('#') != std::string_view::npos) return bad("a fragment (#...) is never sent");
  const auto slash = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, slash);
  out.target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (out.target.front() == '?') out.target.insert(0, "/");
  if (authority.find('@') != std::string_view::npos) return bad("user info (user@host) is not taken; sign with 'secret'");
  auto parsed = parse_authority(authority);
  if (!parsed || parsed->host.empty()) return bad("no host, or a host name with characters no host name has");
  out.host = parsed->host;
  if (out.host.front() == '[') out.host = out.host.substr(1, out.host.size() - 2);
  if (parsed->port.empty()) {
    out.port = out.tls ? 443 : 80;
  } else {
    const unsigned long port = std::stoul(parsed->port);
    if (port == 0 || port > 65535) return bad("the port must be 1 to 65535");
    out.port = static_cast<std::uint16_t>(port);
  }
  return out;
}

}  // namespace switchboard::router
