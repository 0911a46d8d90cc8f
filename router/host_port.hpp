// "HOST:PORT" addresses of the node's HTTP listeners (the WebSocket bridge, the
// metrics endpoint): an IP address, not a name, and a port. And the authorities and
// origins that HTTP clients send (Host, Origin).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "switchboard/common/error.hpp"

namespace switchboard::router {

struct HostPort {
  std::string host;        ///< an IPv4 or IPv6 address (IPv6 without its brackets)
  std::uint16_t port = 0;  ///< 0: any free port
};

/// Reads "HOST:PORT" ("[::1]:7420" for IPv6; a port of "*" or 0 means any free port).
/// nullopt if HOST is not an IP address or PORT not a port.
std::optional<HostPort> parse_host_port(std::string_view text);
/// "HOST:PORT", an IPv6 address in brackets: the authority of a URL.
std::string format_host_port(const std::string& host, std::uint16_t port);

/// The authority of a URL or a Host header.
struct Authority {
  std::string host;  ///< in lower case: a name, an IPv4 address, or an IPv6 address in brackets
  std::string port;  ///< digits, or empty
};
/// Reads "name", "name:port", "[v6]" or "[v6]:port"; nullopt if malformed (a character
/// that no host name has, a port that is not 1 to 5 digits).
std::optional<Authority> parse_authority(std::string_view text);
/// Whether an Authority's host is an IP address rather than a name.
bool is_ip_literal(const std::string& host);

/// An origin as browsers send it: "scheme://host[:port]", the scheme http or https,
/// scheme and host in lower case, a default port (80 for http, 443 for https) left out.
/// Errors: bad_field for anything else (another scheme, a path, user info, no host),
/// with the text named.
Result<std::string> normalise_origin(std::string_view origin);
/// The origin of a page served as `scheme` ("http", "https") from `authority`.
std::string origin_of(const std::string& scheme, const Authority& authority);

/// A URL an HTTP client sends requests to (a webhook's): http or https, a host name or
/// IP address, a port (80 or 443 when left out), and a target (the path and query, "/"
/// when left out).
struct HttpUrl {
  bool tls = false;
  std::string host;  ///< as written (an IPv6 address without its brackets)
  std::uint16_t port = 0;
  std::string target;
};
/// Errors: bad_field naming what is wrong (another scheme, no host, a bad port, user
/// info, a fragment, a space or control character).
Result<HttpUrl> parse_http_url(std::string_view url);

}  // namespace switchboard::router
