#include "switchboard/actors/api/api_server.hpp"

#include <array>
#include <atomic>
#include <optional>
#include <thread>
#include <unordered_map>
#include <utility>
#include <variant>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <spdlog/spdlog.h>

#include "switchboard/actors/api/api_request.hpp"
#include "switchboard/actors/net/http_stream.hpp"
#include "switchboard/actors/net/tls.hpp"
#include "switchboard/actors/net/zmq_watch.hpp"
#include "switchboard/router/host_port.hpp"

namespace switchboard::actors {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using net::AnyStream;
using net::TlsStream;

namespace {

/// The request line and headers a request may have.
constexpr std::size_t kHeaderLimit = 8 * 1024;

class Connection;

/// The statuses the API answers with (api_request.cpp http_status, and the server's own).
/// The last, 0, counts any other (none is answered; reported as 500 if one were).
constexpr std::array<unsigned, 16> kStatuses = {200, 400, 401, 403, 404, 405, 409, 413,
                                                414, 422, 429, 431, 500, 503, 507, 0};

std::size_t status_index(unsigned status) {
  for (std::size_t i = 0; i < kStatuses.size(); ++i)
    if (kStatuses[i] == status) return i;
  return kStatuses.size() - 1;
}

}  // namespace

struct ApiServer::Impl {
  Impl(zmq::context_t& context, ApiOptions o)
      : options(std::move(o)), chat(context, zmq::socket_type::dealer), presence(context, zmq::socket_type::dealer) {
    from_node = options.limits;
    from_node.max_frame = 64u << 20;  // history pages as large as the node makes them
    from_node.max_array = 1u << 20;
  }

  void start();
  void run();
  void accept();
  void shutdown();
  void on_reply(api::Handler handler);
  /// Sends `frame` for `conn`; false if the node's socket cannot take it now.
  bool send(const std::shared_ptr<Connection>& conn, const api::NodeFrame& frame, std::uint64_t id);

  ApiOptions options;
  transport::Limits from_node;
  // Before the io_context: a connection's destructor, run when it goes, counts here.
  std::atomic<std::uint64_t> connections{0};
  std::array<std::atomic<std::uint64_t>, kStatuses.size()> answered{};
  zmq::socket_t chat, presence;
  std::optional<ssl::context> tls;
  asio::io_context ioc{1};  // destroyed before the sockets, after everything holding handlers
  tcp::acceptor acceptor{ioc};
  std::uint16_t bound_port = 0;
  std::unique_ptr<net::ZmqWatch> chat_watch, presence_watch;
  /// The connection each request sent to the node waits in.
  std::unordered_map<std::uint64_t, std::weak_ptr<Connection>> pending;
  std::uint64_t next_id = 1;
  std::string scratch;  ///< a body's JSON read as msgpack (api_request.hpp)
  std::thread thread;
  bool stopped = false;
};

namespace {

std::string_view view(beast::string_view s) { return {s.data(), s.size()}; }

/// The key of "Authorization: Bearer KEY" (the scheme in any case), or nullopt.
std::optional<std::string_view> bearer(const http::request<http::string_body>& req) {
  auto it = req.find(http::field::authorization);
  if (it == req.end()) return std::nullopt;
  std::string_view value = view(it->value());
  constexpr std::string_view scheme = "bearer ";
  if (value.size() <= scheme.size()) return std::nullopt;
  for (std::size_t i = 0; i < scheme.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(value[i])) != scheme[i]) return std::nullopt;
  value.remove_prefix(scheme.size());
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
  return value;
}

/// One HTTP connection: its requests one at a time, each answered before the next is read.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(ApiServer::Impl& api, tcp::socket&& socket)
      : api_(api), stream_(net::make_stream(std::move(socket), api.tls)), timer_(api.ioc) {
    ++api_.connections;
  }
  ~Connection() { --api_.connections; }

  void start() {
    net::when_ready(stream_, api_.options.idle_timeout, "api", [self = shared_from_this()] { self->read(); });
  }

  /// The node's answer to the request this connection waits on.
  void answered(api::Answer answer) {
    timer_.cancel();
    waiting_ = 0;
    respond(std::move(answer));
  }

 private:
  void read() {
    if (api_.stopped) return;
    parser_.emplace();
    parser_->header_limit(kHeaderLimit);
    parser_->body_limit(api_.options.limits.max_frame);
    std::visit(
        [&](auto& stream) {
          beast::get_lowest_layer(stream).expires_after(api_.options.idle_timeout);
          http::async_read_header(stream, buffer_, *parser_,
                                  [self = shared_from_this()](beast::error_code ec, std::size_t) {
                                    if (ec) return self->on_bad_request(ec);
                                    self->on_header();
                                  });
        },
        stream_);
  }

  /// A client that sent `Expect: 100-continue` waits for a 100 before it sends the body
  /// (some wait a second, then send it anyway): it gets one at once.
  void on_header() {
    const auto& req = parser_->get();
    auto expect = req.find(http::field::expect);
    if (parser_->is_done() || expect == req.end() || !beast::iequals(expect->value(), "100-continue"))
      return read_body();
    auto go_on = std::make_shared<http::response<http::empty_body>>(http::status::continue_, req.version());
    std::visit(
        [&](auto& stream) {
          http::async_write(stream, *go_on, [self = shared_from_this(), go_on](beast::error_code ec, std::size_t) {
            if (!ec) self->read_body();
          });
        },
        stream_);
  }

  void read_body() {
    std::visit(
        [&](auto& stream) {
          http::async_read(stream, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
            if (ec) return self->on_bad_request(ec);
            self->on_request();
          });
        },
        stream_);
  }

  /// A request that could not be read: answered when it is the client's fault, so that
  /// it learns why, and the connection ends; one that went away is let go.
  void on_bad_request(beast::error_code ec) {
    keep_alive_ = false;
    const std::string headers = "the request line and headers may take at most " + std::to_string(kHeaderLimit) +
                                " bytes";
    switch (net::classify(ec, *parser_)) {
      case net::BadRequest::line_too_long: return respond({414, api::error_answer(errc::too_large, headers).body});
      case net::BadRequest::headers_too_long: return respond({431, api::error_answer(errc::too_large, headers).body});
      case net::BadRequest::body_too_large:
        return respond(api::error_answer(errc::too_large, "a body may take at most " +
                                                              std::to_string(api_.options.limits.max_frame) + " bytes"));
      case net::BadRequest::not_http:
        return respond(api::error_answer(errc::bad_frame, "not an HTTP/1 request: " + ec.message()));
      case net::BadRequest::gone: return;
    }
  }

  void on_request() {
    const auto& req = parser_->get();
    keep_alive_ = req.keep_alive();
    version_ = req.version();
    auto op = api::find_op(view(req.target()));
    if (!op) return respond(api::error_answer(op.error().code, op.error().message));
    if (req.method() != http::verb::post) {
      allow_post_ = true;
      return respond({405, api::error_answer(errc::bad_frame, "the API takes POST, with the operation's fields as a "
                                                              "JSON object").body});
    }
    const auto key = bearer(req);
    const auto rights = key ? api_.options.keys.find(*key) : std::nullopt;
    if (!rights) {
      challenge_ = true;
      return respond(api::error_answer(
          errc::unauthenticated, key ? "the API key is not one this node admits"
                                     : "an API key is needed: 'Authorization: Bearer KEY' (docs/API.md)"));
    }
    const std::uint64_t id = api_.next_id++;
    auto frame = api::read_request(op->first, op->second, req.body(), id, *rights, api_.options.limits, api_.scratch);
    if (!frame) return respond(api::error_answer(frame.error().code, frame.error().message));
    if (!api_.send(shared_from_this(), *frame, id))
      return respond(api::error_answer(errc::unavailable, "the node cannot take more requests now; retry"));
    waiting_ = id;
    timer_.expires_after(api_.options.request_timeout);
    timer_.async_wait([self = shared_from_this(), id](beast::error_code ec) {
      if (ec || self->waiting_ != id) return;
      self->api_.pending.erase(id);
      self->answered(api::error_answer(errc::unavailable, "the node did not answer in time; retry (a publish with "
                                                          "the same cmid is stored once)"));
    });
  }

  void respond(api::Answer answer) {
    ++api_.answered[status_index(answer.status)];
    auto res = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(answer.status),
                                                                   version_);
    res->set(http::field::server, "switchboard-api");
    res->set(http::field::content_type, "application/json");
    res->set(http::field::cache_control, "no-store");
    res->set("X-Content-Type-Options", "nosniff");
    if (challenge_) res->set(http::field::www_authenticate, "Bearer realm=\"switchboard\"");
    if (allow_post_) res->set(http::field::allow, "POST");
    challenge_ = allow_post_ = false;
    res->keep_alive(keep_alive_ && !api_.stopped);
    res->body() = std::move(answer.body);
    res->body() += '\n';
    res->prepare_payload();
    std::visit(
        [&](auto& stream) {
          beast::get_lowest_layer(stream).expires_after(api_.options.idle_timeout);
          http::async_write(stream, *res, [self = shared_from_this(), res](beast::error_code ec, std::size_t) {
            if (ec) return;
            if (res->keep_alive()) return self->read();
            self->finish();
          });
        },
        stream_);
  }

  void finish() {
    if (auto* tls = std::get_if<TlsStream>(&stream_))
      return tls->async_shutdown([self = shared_from_this()](beast::error_code) {});
    beast::error_code ec;
    std::get<beast::tcp_stream>(stream_).socket().shutdown(tcp::socket::shutdown_send, ec);
  }

  ApiServer::Impl& api_;
  AnyStream stream_;
  asio::steady_timer timer_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::uint64_t waiting_ = 0;  ///< the request id the node has not answered yet
  unsigned version_ = 11;
  bool keep_alive_ = false, challenge_ = false, allow_post_ = false;
};

}  // namespace

void ApiServer::Impl::start() {
  for (zmq::socket_t* s : {&chat, &presence}) {
    s->set(zmq::sockopt::linger, 200);
    s->set(zmq::sockopt::sndhwm, 100'000);
    s->set(zmq::sockopt::rcvhwm, 100'000);
  }
  chat.connect(options.chat_endpoint);
  presence.connect(options.presence_endpoint);
  bound_port = net::listen(acceptor, options.address, options.port);
  chat_watch = std::make_unique<net::ZmqWatch>(ioc, chat, [this] { on_reply(api::Handler::chat); });
  presence_watch = std::make_unique<net::ZmqWatch>(ioc, presence, [this] { on_reply(api::Handler::presence); });
  thread = std::thread([this] { run(); });
}

void ApiServer::Impl::run() {
  chat_watch->start();
  presence_watch->start();
  accept();
  while (true) {
    try {
      ioc.run();
      return;
    } catch (const std::exception& e) {
      // A fault in one handler must not take every connection down.
      spdlog::error("api: {}", e.what());
    }
  }
}

void ApiServer::Impl::accept() {
  acceptor.async_accept([this](beast::error_code ec, tcp::socket socket) {
    if (stopped) return;
    if (!ec) std::make_shared<Connection>(*this, std::move(socket))->start();
    accept();
  });
}

void ApiServer::Impl::shutdown() {
  stopped = true;
  std::uint64_t total = 0, ok = answered[status_index(200)].load();
  for (const auto& n : answered) total += n.load();
  spdlog::info("api: stopping; {} requests answered, {} of them 200", total, ok);
  beast::error_code ec;
  acceptor.close(ec);
  // Give the answers being written a moment to go out, then end the loop.
  auto done = std::make_shared<asio::steady_timer>(ioc, std::chrono::milliseconds(200));
  done->async_wait([this, done](beast::error_code) { ioc.stop(); });
}

bool ApiServer::Impl::send(const std::shared_ptr<Connection>& conn, const api::NodeFrame& frame, std::uint64_t id) {
  const bool to_chat = frame.handler == api::Handler::chat;
  zmq::socket_t& socket = to_chat ? chat : presence;
  const bool sent = socket.send(zmq::buffer(frame.frame), zmq::send_flags::dontwait).has_value();
  (to_chat ? chat_watch : presence_watch)->poke();
  if (sent) pending.emplace(id, conn);
  return sent;
}

void ApiServer::Impl::on_reply(api::Handler handler) {
  zmq::message_t frame;
  if (!(handler == api::Handler::chat ? chat : presence).recv(frame, zmq::recv_flags::dontwait)) return;
  std::uint64_t id = 0;
  api::Answer answer = api::read_reply(handler, frame.to_string_view(), from_node, id);
  auto it = pending.find(id);
  if (it == pending.end()) return;  // timed out already, or a frame that names no request
  auto conn = it->second.lock();
  pending.erase(it);
  if (conn) conn->answered(std::move(answer));
}

Result<std::unique_ptr<ApiServer>> ApiServer::start(zmq::context_t& context, ApiOptions options) {
  auto impl = std::make_unique<Impl>(context, std::move(options));
  if (auto tls = net::load_tls(impl->tls, impl->options.tls_cert, impl->options.tls_key, "the API"); !tls)
    return tls.error();
  try {
    impl->start();
  } catch (const std::exception& e) {
    return make_error(errc::unavailable, "cannot start the HTTP API on " + impl->options.address + ":" +
                                             std::to_string(impl->options.port) + ": " + e.what());
  }
  return std::unique_ptr<ApiServer>(new ApiServer(std::move(impl)));
}

ApiServer::ApiServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ApiServer::~ApiServer() { stop(); }

void ApiServer::stop() {
  if (!impl_ || !impl_->thread.joinable()) return;
  asio::post(impl_->ioc, [impl = impl_.get()] { impl->shutdown(); });
  impl_->thread.join();
}

std::uint16_t ApiServer::port() const noexcept { return impl_->bound_port; }

std::string ApiServer::url() const {
  return (impl_->tls ? "https://" : "http://") +
         router::format_host_port(asio::ip::make_address(impl_->options.address).to_string(), port()) + "/api/v1/";
}

ApiStats ApiServer::stats() const {
  ApiStats s;
  s.connections = impl_->connections.load(std::memory_order_relaxed);
  for (std::size_t i = 0; i < kStatuses.size(); ++i)
    if (const auto n = impl_->answered[i].load(std::memory_order_relaxed); n != 0)
      s.answered[kStatuses[i] == 0 ? 500 : kStatuses[i]] += n;
  return s;
}

}  // namespace switchboard::actors
