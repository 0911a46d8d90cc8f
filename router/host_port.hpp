// "HOST:PORT" addresses of the node's HTTP listeners (the WebSocket bridge, the
// metrics endpoint): an IP address, not a name, and a port.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

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

}  // namespace switchboard::router
