// What the node's HTTP servers share (the WebSocket bridge, the HTTP API): a
// connection's byte stream, plain or TLS, its listening socket, and how a request that
// could not be read is told apart.
//
// Internal to the library; it includes Boost.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>  // Boost 1.74's asio/awaitable.hpp needs std::exchange
#include <variant>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <spdlog/spdlog.h>

namespace switchboard::actors::net {

/// A connection's byte stream: plain TCP, or TLS over TCP when the server has a
/// certificate (net/tls.hpp).
using TlsStream = boost::beast::ssl_stream<boost::beast::tcp_stream>;
using AnyStream = std::variant<boost::beast::tcp_stream, TlsStream>;

/// The stream of an accepted connection: TLS with `tls` when set. TCP_NODELAY is set on
/// it: without it a small answer that follows one not yet acknowledged waits for the
/// peer's delayed ACK, about 40 ms.
inline AnyStream make_stream(boost::asio::ip::tcp::socket&& socket, std::optional<boost::asio::ssl::context>& tls) {
  boost::beast::error_code ignored;  // a socket that cannot take it still works, only later
  socket.set_option(boost::asio::ip::tcp::no_delay(true), ignored);
  if (tls) return AnyStream(std::in_place_type<TlsStream>, std::move(socket), *tls);
  return AnyStream(std::in_place_type<boost::beast::tcp_stream>, std::move(socket));
}

/// Runs `then()` once `stream` may carry requests: at once for plain TCP, after the TLS
/// handshake (within `timeout`) for TLS. A failed handshake (a plain client on a TLS
/// port, a bad certificate) is logged at debug level under `server` and `then` never
/// runs: the connection goes with the last handler that holds it.
template <class Then>
void when_ready(AnyStream& stream, std::chrono::milliseconds timeout, const char* server, Then then) {
  auto* tls = std::get_if<TlsStream>(&stream);
  if (tls == nullptr) return then();
  boost::beast::get_lowest_layer(*tls).expires_after(timeout);
  tls->async_handshake(boost::asio::ssl::stream_base::server,
                       [server, then = std::move(then)](boost::beast::error_code ec) mutable {
                         if (ec) return spdlog::debug("{}: TLS handshake failed: {}", server, ec.message());
                         then();
                       });
}

/// Opens, binds (SO_REUSEADDR) and listens on `address`:`port` (0: any free port), and
/// returns the port bound. Throws boost::system::system_error when it cannot.
inline std::uint16_t listen(boost::asio::ip::tcp::acceptor& acceptor, const std::string& address, std::uint16_t port) {
  const boost::asio::ip::tcp::endpoint endpoint(boost::asio::ip::make_address(address), port);
  acceptor.open(endpoint.protocol());
  acceptor.set_option(boost::asio::socket_base::reuse_address(true));
  acceptor.bind(endpoint);
  acceptor.listen(boost::asio::socket_base::max_listen_connections);
  return acceptor.local_endpoint().port();
}

/// Why a request could not be read (http::async_read's error).
enum class BadRequest : std::uint8_t {
  gone,          ///< the peer went away, or stopped mid-request: nobody to answer
  line_too_long,  ///< the request line alone is over the header limit: 414
  headers_too_long,  ///< 431
  body_too_large,    ///< 413
  not_http,          ///< 400
};
template <class Parser>
BadRequest classify(boost::beast::error_code ec, const Parser& parser) {
  namespace http = boost::beast::http;
  // The request line is parsed first: no target yet means it alone was too long.
  if (ec == http::error::header_limit)
    return parser.get().target().empty() ? BadRequest::line_too_long : BadRequest::headers_too_long;
  if (ec == http::error::body_limit) return BadRequest::body_too_large;
  if (ec.category() == http::make_error_code(http::error::bad_target).category() && ec != http::error::end_of_stream &&
      ec != http::error::partial_message && ec != http::error::short_read)
    return BadRequest::not_http;
  return BadRequest::gone;
}

}  // namespace switchboard::actors::net
