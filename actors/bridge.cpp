#include "switchboard/actors/bridge.hpp"

#include <atomic>
#include <deque>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <thread>
#include <unordered_map>
#include <variant>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <spdlog/spdlog.h>

#include "switchboard/actors/bridge/client_request.hpp"
#include "switchboard/actors/bridge/json_codec.hpp"
#include "switchboard/actors/bridge/origin_policy.hpp"
#include "switchboard/actors/bridge/out_frame.hpp"
#include "switchboard/actors/bridge/static_files.hpp"
#include "switchboard/actors/net/http_stream.hpp"
#include "switchboard/actors/net/tls.hpp"
#include "switchboard/actors/net/zmq_watch.hpp"
#include "switchboard/common/rate_limit.hpp"
#include "switchboard/common/utf8.hpp"
#include "switchboard/router/host_port.hpp"
#include "switchboard/transport/codec.hpp"
#include "switchboard/transport/socket.hpp"

namespace switchboard::actors {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using bridge::MapWriter;
namespace ssl = asio::ssl;
/// A connection's byte stream: plain TCP, or TLS over TCP when the bridge has a
/// certificate (wss:// and https://).
using net::AnyStream;
using net::TlsStream;
using AnyWebSocket = std::variant<websocket::stream<beast::tcp_stream>, websocket::stream<TlsStream>>;
using SteadyClock = std::chrono::steady_clock;
using net::ZmqWatch;

/// Close codes of docs/PROTOCOL.md section 10 (4000-4999 are the application's).
constexpr std::uint16_t kCloseAuthTimeout = 4001;
constexpr std::uint16_t kCloseSlowConsumer = 4008;

/// What the bridge reads from its own node: the node's limits, and pages as large as
/// the node makes them.
transport::Limits node_limits(transport::Limits l) {
  l.max_frame = 64u << 20;
  l.max_array = 1u << 20;
  return l;
}

/// A room message as the bridge sends it, to every connection that takes it: JSON
/// text, and msgpack (`event`: the node's message event, sent as it is; none: encoded).
SharedFrame message_frame(const transport::RoomMessage& m, std::optional<std::string_view> event = std::nullopt) {
  return std::make_shared<const OutFrame>(
      OutFrame{bridge::message_json(m), event ? std::string(*event) : transport::encode_message(m)});
}

/// `key` of a client's request if it is a boolean, else `otherwise`.
bool flag(const transport::FieldReader& f, std::string_view key, bool otherwise) {
  const MsgpackNode* v = f.find(key);
  return v && v->is(MsgpackType::boolean) ? v->via.boolean : otherwise;
}

std::string random_hex(std::mt19937_64& rng) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(32);
  for (int i = 0; i < 2; ++i) {
    std::uint64_t v = rng();
    for (int j = 0; j < 16; ++j, v >>= 4) out += digits[v & 15];
  }
  return out;
}

class Session;

}  // namespace

// ---- the bridge: its sockets, connections and the delivery state ----------------

struct Bridge::Impl {
  explicit Impl(zmq::context_t& context, BridgeOptions o)
      : options(std::move(o)),
        from_node(node_limits(options.limits)),
        acceptor(ioc),
        chat(context, zmq::socket_type::dealer),
        presence(context, zmq::socket_type::dealer),
        rooms_sub(context, zmq::socket_type::sub),
        presence_sub(context, zmq::socket_type::sub),
        delivery(RoomDelivery::Options{options.history_page}, [this](ConnId c) { return budget(c); }),
        heartbeat_interval(options.presence_heartbeat),
        publish_limits({options.limits.publish_per_s, options.limits.publish_burst}),
        typing_limits({options.limits.typing_per_s, options.limits.typing_burst}),
        tick_timer(ioc),
        heartbeat_timer(ioc),
        rng(std::random_device{}()) {}

  void start();
  void run();
  void shutdown();

  // connections
  void accept();
  void opened(const std::shared_ptr<Session>& s);
  void closed(ConnId id);
  void on_frame(Session& s, bool binary, std::string_view data);

  // requests
  enum class Kind { forward, subscribe, fetch, quiet_check, session_open, heartbeat, ignore, recheck };
  struct Pending {
    Pending(Kind k, ConnId c = 0, std::uint64_t id = 0, std::string r = {}, std::optional<std::uint64_t> a = {},
            bool events = true)
        : kind(k), conn(c), client_id(id), room(std::move(r)), after(a), presence_events(events) {}
    Kind kind;
    ConnId conn;
    std::uint64_t client_id;  ///< the id the client gave
    std::string room;
    std::optional<std::uint64_t> after;
    bool presence_events;
    bool to_presence = false;  ///< sent to the presence actor (else to chat)
  };
  /// Sends a request to the node's chat or presence actor, `as` that user; false: the
  /// socket's queue is full (nothing sent).
  bool send_chat(transport::RequestBody body, std::optional<std::string> as, Pending pending);
  bool send_presence(transport::PresenceRequestBody body, std::optional<std::string> as, Pending pending);
  bool send_frame(zmq::socket_t& socket, ZmqWatch& watch, const std::string& frame, std::uint64_t id, Pending p);
  void on_reply(zmq::socket_t& socket, bool from_presence);
  /// The request `id` waits for, taken out of the pending ones; nullopt: none waits.
  std::optional<Pending> take_pending(std::uint64_t id);
  /// A reply the bridge could not read: its request, if it names one, fails (internal).
  void on_unreadable(std::string_view frame, bool from_presence, const Error& why);
  void on_room_message();
  void on_presence_event();
  void answer(const Pending& p, transport::Reply reply);
  void answer(const Pending& p, transport::PresenceReply reply);
  /// A request the node did not answer: it fails with `unavailable`.
  void expire(const Pending& p);
  void forward(Session& s, const bridge::ClientOp& op, std::uint64_t id, transport::FieldReader& fields);
  /// The reply to `auth` (section 10.2): whether a presence session was opened.
  std::string auth_frame(const Session& s, std::uint64_t id, bool presence_session) const;
  void subscribe(Session& s, std::uint64_t id, const transport::FieldReader& req);
  void unsubscribe(Session& s, std::uint64_t id, const transport::FieldReader& req);
  void authenticate(Session& s, std::uint64_t id, const transport::FieldReader& req, bool binary);
  /// Answers request `id` with an error (and counts it).
  void refuse(Session& s, std::uint64_t id, std::string_view code, std::string_view message);
  /// Answers request `id` with rate_limited when `wait` is not zero; says whether it did.
  bool limited(Session& s, std::uint64_t id, std::chrono::milliseconds wait, std::string_view what);
  /// The room or user name at req[key], or nullopt once the request is refused.
  std::optional<std::string_view> name_field(Session& s, std::uint64_t id, const transport::FieldReader& req,
                                             std::string_view key, std::size_t max);
  void carry_out(DeliveryActions& actions);
  void stop_following(ConnId conn, const std::string& room);
  /// Ends `s`'s subscription to `room`, if it has one, and pushes `unsubscribed` with
  /// `reason` (the node's doing: a removal, a deletion, a kick). Says whether it had one.
  bool end_subscription(Session& s, const std::string& room, std::string_view reason);
  /// Subscribes (on) or unsubscribes a SUB to a room's topic.
  void topic(zmq::socket_t& sub, ZmqWatch& watch, const std::string& room, bool on);
  void room_topic(const std::string& room, bool on) { topic(rooms_sub, *rooms_watch, room, on); }
  void presence_topic(const std::string& room, bool on) { topic(presence_sub, *presence_events_watch, room, on); }
  /// A user's read marker moved: every connection of the user is told.
  void on_read_event(std::string_view bytes);
  void tick();
  void heartbeat();
  void arm_heartbeat();
  std::size_t budget(ConnId conn);
  void resume(ConnId conn);

  Session* find(ConnId id) {
    auto it = sessions.find(id);
    return it == sessions.end() ? nullptr : it->second.get();
  }

  BridgeOptions options;
  transport::Limits from_node;  ///< what replies and events from the node are read with
  std::string scratch;          ///< a text frame's JSON, read as msgpack (bridge/client_request.hpp)
  std::optional<bridge::StaticFiles> files;  ///< options.web_root, when given
  bridge::OriginPolicy origin_policy;         ///< options.allowed_origins and peer_bridges
  std::string peer_connect;                   ///< " ws://HOST:PORT ..." of options.peer_bridges
  asio::io_context ioc{1};  // declared first: destroyed last, after everything holding handlers
  std::optional<ssl::context> tls;  ///< set when the bridge serves wss:// (options.tls_cert)
  tcp::acceptor acceptor;
  std::uint16_t bound_port = 0;
  zmq::socket_t chat, presence, rooms_sub, presence_sub;
  std::unique_ptr<ZmqWatch> chat_watch, presence_watch, rooms_watch, presence_events_watch;
  std::map<ConnId, std::shared_ptr<Session>> sessions;
  ConnId next_conn = 1;
  RoomDelivery delivery;
  /// The connections following each room that want its presence events.
  std::map<std::string, std::set<ConnId>, std::less<>> presence_followers;
  /// Each authenticated user's connections: told when the user's read marker moves, and
  /// when a membership of theirs ends (events on the user's topic, on rooms_sub while
  /// any is open, from the auth on: a removal right after a subscribe is not missed).
  std::map<std::string, std::set<ConnId>, std::less<>> read_followers;
  std::unordered_map<std::uint64_t, Pending> pending;
  std::deque<std::pair<SteadyClock::time_point, std::uint64_t>> deadlines;
  std::uint64_t next_request = 1;
  std::chrono::milliseconds heartbeat_interval;
  RateLimiter publish_limits, typing_limits;  ///< per user, over all of the user's connections
  asio::steady_timer tick_timer, heartbeat_timer;
  std::mt19937_64 rng;
  std::thread thread;
  bool stopped = false;

  std::atomic<std::uint64_t> connections{0}, delivered{0}, slow_closed{0}, bad_frames{0}, fetches{0}, rate_limited{0};
};

namespace {

/// A FIFO that holds little memory while empty (std::deque allocates 568 B on
/// construction): a connection that was never sent anything holds none, and a drained
/// queue keeps room for a few frames (so one delivery at a time allocates nothing) and
/// lets a larger backlog's storage go.
template <class T>
class SendQueue {
 public:
  bool empty() const noexcept { return head_ == items_.size(); }
  std::size_t size() const noexcept { return items_.size() - head_; }
  T& front() { return items_[head_]; }
  T& back() { return items_.back(); }
  void push_back(T item) { items_.push_back(std::move(item)); }
  void pop_front() {
    items_[head_++] = T{};
    if (empty()) clear();
    else if (head_ >= 64 && head_ * 2 >= items_.size()) {  // keep the taken part small
      items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
  }
  void pop_back() {
    items_.pop_back();
    if (empty()) clear();
  }
  void clear() {
    if (items_.capacity() > kKept) std::vector<T>().swap(items_);
    items_.clear();
    head_ = 0;
  }

 private:
  static constexpr std::size_t kKept = 4;
  std::vector<T> items_;
  std::size_t head_ = 0;
};

/// Bytes a read asks for at a time: a request frame arrives in a few reads, and an idle
/// connection holds no read buffer of its own (the message is gathered in the session's
/// buffer, released after each message).
constexpr std::size_t kReadChunk = 128;

/// One WebSocket connection: its stream, its bounded send queue, who it is.
class Session : public std::enable_shared_from_this<Session> {
 public:
  /// `stream`: a beast::tcp_stream or a TlsStream whose TLS handshake is done.
  template <class Stream>
  Session(Bridge::Impl& bridge, ConnId id, Stream&& stream)
      : bridge_(bridge),
        id_(id),
        ws_(std::in_place_type<websocket::stream<std::decay_t<Stream>>>, std::forward<Stream>(stream)),
        opened_at_(SteadyClock::now()) {}

  void accept(http::request<http::string_body> req) {
    std::visit(
        [&](auto& ws) {
          const auto& o = bridge_.options;
          websocket::stream_base::timeout timeouts{o.handshake_timeout, o.idle_timeout, true};
          ws.set_option(timeouts);
          ws.set_option(websocket::stream_base::decorator(
              [](websocket::response_type& res) { res.set(http::field::server, "switchboard-bridge"); }));
          ws.read_message_max(o.max_frame);
          ws.async_accept(req, [self = shared_from_this()](beast::error_code ec) {
            if (ec) return;
            self->bridge_.opened(self);
            self->read();
          });
        },
        ws_);
  }

  /// Queues a frame; past the queue's bounds the client is too slow and is closed.
  void send(const SharedFrame& frame, bool binary) {
    if (closing_) return;
    const std::size_t size = binary ? frame->binary.size() : frame->text.size();
    const auto& o = bridge_.options;
    if (queue_.size() >= o.max_queued_frames || queued_bytes_ + size > o.max_queued_bytes) {
      ++bridge_.slow_closed;
      spdlog::info("bridge: connection {} ({}) fell behind ({} frames queued): closing", id_, user_, queue_.size());
      return close(kCloseSlowConsumer, "slow consumer: reconnect and resume from your last seq", false);
    }
    queue_.push_back({frame, binary});
    queued_bytes_ += size;
    write();
  }
  /// Queues a frame made for this connection alone, in its format (binary()).
  void reply(std::string frame) {
    send(std::make_shared<const OutFrame>(binary_ ? OutFrame{{}, std::move(frame)} : OutFrame{std::move(frame), {}}),
         binary_);
  }

  /// Ends the connection with `code`. `flush`: after what is queued has gone out.
  void close(std::uint16_t code, std::string reason, bool flush) {
    if (closing_) return;
    auto self = shared_from_this();  // the bridge lets go of it below
    closing_ = true;
    close_code_ = code;
    close_text_ = std::move(reason);
    if (!flush) {
      // Keep only the frame being written: Beast must finish it before the close.
      while (queue_.size() > (writing_ ? 1u : 0u)) {
        queued_bytes_ -= size_of(queue_.back());
        queue_.pop_back();
      }
    }
    bridge_.closed(id_);
    if (!writing_ && queue_.empty()) send_close();
  }

  ConnId id() const noexcept { return id_; }
  const std::string& user() const noexcept { return user_; }
  bool authenticated() const noexcept { return !user_.empty(); }
  bool binary() const noexcept { return binary_; }
  bool closing() const noexcept { return closing_; }
  SteadyClock::time_point opened_at() const noexcept { return opened_at_; }
  void set_user(std::string user, bool binary) {
    user_ = std::move(user);
    binary_ = binary;
  }
  std::size_t queued() const noexcept { return queue_.size(); }
  std::size_t queued_bytes() const noexcept { return queued_bytes_; }
  bool wants_resume = false;     ///< its catch-up waits for its queue to drain
  TokenBucket requests;          ///< every request it sends (Limits::requests_per_s)
  std::string presence_session;  ///< its presence session ("" while none is open)
  std::set<std::string> rooms;   ///< followed, or being subscribed
  /// The token's room grants: rooms the user may join though private (the operator,
  /// who signed the token, invites them).
  std::set<std::string> granted;
  std::size_t in_flight = 0;     ///< requests waiting for the node

 private:
  struct Queued {
    SharedFrame frame;
    bool binary;
  };
  static std::size_t size_of(const Queued& q) { return q.binary ? q.frame->binary.size() : q.frame->text.size(); }

  void read() {
    std::visit(
        [&](auto& ws) {
          ws.async_read_some(buffer_, kReadChunk, [self = shared_from_this()](beast::error_code ec, std::size_t) {
            self->on_read(ec);
          });
        },
        ws_);
  }
  void on_read(beast::error_code ec) {
    if (ec) {
      if (ec == websocket::error::message_too_big) ++bridge_.bad_frames;  // Beast closes with 1009
      closing_ = true;
      bridge_.closed(id_);
      return;
    }
    // read_message_max bounds what a message gathers here.
    if (!std::visit([](auto& ws) { return ws.is_message_done(); }, ws_)) return read();
    if (!closing_) {
      const auto data = buffer_.cdata();
      const bool binary = std::visit([](auto& ws) { return ws.got_binary(); }, ws_);
      bridge_.on_frame(*this, binary, std::string_view(static_cast<const char*>(data.data()), data.size()));
    }
    buffer_.consume(buffer_.size());
    buffer_.shrink_to_fit();
    read();
  }

  void write() {
    if (writing_ || queue_.empty()) return;
    writing_ = true;
    const Queued& q = queue_.front();
    const std::string& bytes = q.binary ? q.frame->binary : q.frame->text;
    std::visit(
        [&](auto& ws) {
          ws.binary(q.binary);
          ws.async_write(asio::buffer(bytes),
                         [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_written(ec); });
        },
        ws_);
  }
  void on_written(beast::error_code ec) {
    writing_ = false;
    queued_bytes_ -= size_of(queue_.front());
    queue_.pop_front();
    if (ec) {
      queue_.clear();
      closing_ = true;
      bridge_.closed(id_);
      return;
    }
    ++bridge_.delivered;
    if (wants_resume && queue_.size() <= bridge_.options.max_queued_frames / 2 &&
        queued_bytes_ <= bridge_.options.max_queued_bytes / 4) {
      wants_resume = false;
      bridge_.resume(id_);
    }
    if (!queue_.empty()) return write();
    if (closing_) send_close();
  }

  void send_close() {
    if (close_sent_) return;
    close_sent_ = true;
    const websocket::close_reason reason(static_cast<websocket::close_code>(close_code_), close_text_);
    std::visit([&](auto& ws) { ws.async_close(reason, [self = shared_from_this()](beast::error_code) {}); }, ws_);
  }

  Bridge::Impl& bridge_;
  ConnId id_;
  AnyWebSocket ws_;
  beast::flat_buffer buffer_;
  SendQueue<Queued> queue_;
  std::size_t queued_bytes_ = 0;
  bool writing_ = false, closing_ = false, close_sent_ = false, binary_ = false;
  std::uint16_t close_code_ = 1000;
  std::string close_text_;
  std::string user_;
  SteadyClock::time_point opened_at_;
};

/// Limits of an HTTP request to the bridge: its request line and headers together (a
/// longer request line is answered 414, longer headers 431), and its body (413).
constexpr std::size_t kHttpHeaderLimit = 8 * 1024;
constexpr std::size_t kHttpBodyLimit = 16 * 1024;
/// After an answer that ends a connection, what the client still sends is read and
/// dropped (at most this much, within the handshake timeout): closing with unread
/// bytes would reset the connection, and the client could lose the answer.
constexpr std::size_t kDrainLimit = 1 << 20;

/// The headers every HTTP answer of the bridge carries: no sniffing of content types,
/// no framing by other sites, no referrer, and a Content-Security-Policy that lets the
/// page load its own files and open a WebSocket to this bridge, and to the other bridges
/// of its topology (`peers`: " ws://HOST:PORT ...").
template <class Response>
void harden(Response& res, std::string_view host, std::string_view peers = {}) {
  res.set(http::field::server, "switchboard-bridge");
  res.set("X-Content-Type-Options", "nosniff");
  res.set("X-Frame-Options", "DENY");
  res.set("Referrer-Policy", "no-referrer");
  std::string connect = "'self'";
  if (!host.empty()) connect += " ws://" + std::string(host) + " wss://" + std::string(host);
  connect += peers;  // the topology's other bridges (BridgeOptions::peer_bridges)
  res.set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                     "connect-src " + connect + "; base-uri 'none'; form-action 'self'; "
                                     "frame-ancestors 'none'");
}

/// An HTTP connection: serves the web page's files, or hands an upgrade to a Session.
class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(Bridge::Impl& bridge, tcp::socket&& socket)
      : bridge_(bridge), stream_(net::make_stream(std::move(socket), bridge.tls)) {}

  /// Serves the connection: the TLS handshake first when the bridge has a certificate.
  void start() {
    net::when_ready(stream_, bridge_.options.handshake_timeout, "bridge", [self = shared_from_this()] { self->read(); });
  }

 private:
  void read() {
    parser_.emplace();
    parser_->header_limit(kHttpHeaderLimit);
    parser_->body_limit(kHttpBodyLimit);
    std::visit(
        [&](auto& stream) {
          beast::get_lowest_layer(stream).expires_after(bridge_.options.handshake_timeout);
          http::async_read(stream, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
            if (ec) return self->on_bad_request(ec);
            self->on_request();
          });
        },
        stream_);
  }

  /// A request that could not be read: too long, or not HTTP. Answered when it is the
  /// client's fault, so that it learns why; a connection that went away is let go.
  void on_bad_request(beast::error_code ec) {
    const std::string headers = "the request line and headers may take at most " + std::to_string(kHttpHeaderLimit) +
                                " bytes";
    switch (net::classify(ec, *parser_)) {
      case net::BadRequest::line_too_long: return refuse(http::status::uri_too_long, headers);
      case net::BadRequest::headers_too_long: return refuse(http::status::request_header_fields_too_large, headers);
      case net::BadRequest::body_too_large:
        return refuse(http::status::payload_too_large,
                      "a request body may take at most " + std::to_string(kHttpBodyLimit) + " bytes");
      case net::BadRequest::not_http: return refuse(http::status::bad_request, "not an HTTP/1 request: " + ec.message());
      case net::BadRequest::gone: return;
    }
  }

  void on_request() {
    const auto& req = parser_->get();
    const std::string_view host = header(req, http::field::host).value_or("");
    if (websocket::is_upgrade(req)) return upgrade();
    if (req.method() != http::verb::get && req.method() != http::verb::head) {
      auto res = text_response(http::status::method_not_allowed, "only GET and HEAD\n", host);
      res->set(http::field::allow, "GET, HEAD");
      return reply(res);
    }
    std::optional<std::filesystem::path> file;
    if (bridge_.files) file = bridge_.files->resolve(std::string_view(req.target().data(), req.target().size()));
    beast::error_code ec;
    http::file_body::value_type body;
    if (file) body.open(file->c_str(), beast::file_mode::scan, ec);
    if (!file || ec) return reply(text_response(http::status::not_found, "not found\n", host));
    auto head = [&](auto& res) {
      res.version(req.version());
      res.keep_alive(req.keep_alive());
      harden(res, host, bridge_.peer_connect);
      res.set(http::field::content_type, bridge::mime_type(*file));
      res.set(http::field::cache_control, "no-cache");
    };
    if (req.method() == http::verb::head) {
      // HEAD: GET's headers, its Content-Length included, and no body.
      auto res = std::make_shared<http::response<http::empty_body>>(http::status::ok, req.version());
      head(*res);
      res->content_length(body.size());
      return reply(res);
    }
    auto res = std::make_shared<http::response<http::file_body>>(http::status::ok, req.version());
    head(*res);
    res->body() = std::move(body);
    res->prepare_payload();
    reply(res);
  }

  /// A WebSocket upgrade: admitted only from the bridge's own page and the origins the
  /// operator named, and only for a Host the bridge serves (bridge/origin_policy.hpp).
  void upgrade() {
    const auto& req = parser_->get();
    const auto refusal = bridge::check_upgrade(bridge_.origin_policy, header(req, http::field::origin),
                                               header(req, http::field::host), bridge_.tls.has_value());
    if (refusal) {
      spdlog::info("bridge: refused a WebSocket upgrade: {}", *refusal);
      return refuse(http::status::forbidden, *refusal);
    }
    return std::visit(
        [&](auto& stream) {
          beast::get_lowest_layer(stream).expires_never();  // the WebSocket's own timeouts take over
          auto session = std::make_shared<Session>(bridge_, bridge_.next_conn++, std::move(stream));
          session->accept(parser_->release());
        },
        stream_);
  }

  static std::optional<std::string_view> header(const http::request<http::string_body>& req, http::field f) {
    auto it = req.find(f);
    if (it == req.end()) return std::nullopt;
    return std::string_view(it->value().data(), it->value().size());
  }

  std::shared_ptr<http::response<http::string_body>> text_response(http::status status, std::string body,
                                                                   std::string_view host) {
    auto res = std::make_shared<http::response<http::string_body>>(status, parser_->get().version());
    harden(*res, host, bridge_.peer_connect);
    res->set(http::field::content_type, "text/plain; charset=utf-8");
    res->keep_alive(parser_->get().keep_alive());
    if (parser_->get().method() != http::verb::head) res->body() = std::move(body);
    res->prepare_payload();
    return res;
  }

  /// Answers `status` with `why` and ends the connection.
  void refuse(http::status status, std::string why) {
    auto res = std::make_shared<http::response<http::string_body>>(status, 11);
    harden(*res, "");
    res->set(http::field::content_type, "text/plain; charset=utf-8");
    res->keep_alive(false);
    res->body() = std::move(why) + "\n";
    res->prepare_payload();
    reply(res);
  }

  template <class Response>
  void reply(std::shared_ptr<Response> res) {
    std::visit(
        [&](auto& stream) {
          http::async_write(stream, *res, [self = shared_from_this(), res](beast::error_code ec, std::size_t) {
            if (ec || !res->keep_alive()) return self->finish();
            self->read();
          });
        },
        stream_);
  }
  void finish() {
    if (auto* tls = std::get_if<TlsStream>(&stream_)) {
      beast::get_lowest_layer(*tls).expires_after(bridge_.options.handshake_timeout);
      return tls->async_shutdown([self = shared_from_this()](beast::error_code) {});
    }
    auto& tcp_stream = std::get<beast::tcp_stream>(stream_);
    beast::error_code ec;
    tcp_stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    tcp_stream.expires_after(bridge_.options.handshake_timeout);
    drain();
  }
  /// Reads and drops what the client still sends until it closes (see kDrainLimit).
  void drain() {
    auto& tcp_stream = std::get<beast::tcp_stream>(stream_);
    buffer_.consume(buffer_.size());
    tcp_stream.async_read_some(buffer_.prepare(16 * 1024),
                               [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                                 self->drained_ += n;
                                 if (ec || self->drained_ > kDrainLimit) return;
                                 self->drain();
                               });
  }

  Bridge::Impl& bridge_;
  AnyStream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::size_t drained_ = 0;
};

}  // namespace

// ---- Impl --------------------------------------------------------------------------

void Bridge::Impl::start() {
  for (zmq::socket_t* s : {&chat, &presence}) {
    s->set(zmq::sockopt::linger, 200);
    s->set(zmq::sockopt::sndhwm, 100'000);
    s->set(zmq::sockopt::rcvhwm, 100'000);
  }
  rooms_sub.set(zmq::sockopt::rcvhwm, options.limits.pub_sndhwm);
  chat.connect(options.chat_endpoint);
  presence.connect(options.presence_endpoint);
  rooms_sub.set(zmq::sockopt::subscribe, transport::heads_topic());  // what shows a dropped tail
  rooms_sub.connect(options.pub_endpoint);
  presence_sub.connect(options.presence_pub_endpoint);

  bound_port = net::listen(acceptor, options.address, options.port);

  chat_watch = std::make_unique<ZmqWatch>(ioc, chat, [this] { on_reply(chat, false); });
  presence_watch = std::make_unique<ZmqWatch>(ioc, presence, [this] { on_reply(presence, true); });
  rooms_watch = std::make_unique<ZmqWatch>(ioc, rooms_sub, [this] { on_room_message(); });
  presence_events_watch = std::make_unique<ZmqWatch>(ioc, presence_sub, [this] { on_presence_event(); });
  thread = std::thread([this] { run(); });
}

void Bridge::Impl::run() {
  for (ZmqWatch* w : {chat_watch.get(), presence_watch.get(), rooms_watch.get(), presence_events_watch.get()})
    w->start();
  accept();
  tick();
  arm_heartbeat();
  while (true) {
    try {
      ioc.run();
      return;
    } catch (const std::exception& e) {
      // A fault in one handler must not take every connection down.
      spdlog::error("bridge: {}", e.what());
    }
  }
}

void Bridge::Impl::shutdown() {
  stopped = true;
  spdlog::info("bridge: stopping; {} connections open, {} frames sent, {} history fetches (catch-up and gap repair), "
               "{} slow consumers closed, {} bad frames, {} requests rate limited",
               connections.load(), delivered.load(), fetches.load(), slow_closed.load(), bad_frames.load(),
               rate_limited.load());
  beast::error_code ec;
  acceptor.close(ec);
  tick_timer.cancel();
  heartbeat_timer.cancel();
  auto open = sessions;  // close() removes them
  for (auto& [id, s] : open) s->close(websocket::close_code::going_away, "the node is stopping", false);
  // Give the close frames a moment to go out, then end the loop.
  auto done = std::make_shared<asio::steady_timer>(ioc, std::chrono::milliseconds(300));
  done->async_wait([this, done](beast::error_code) { ioc.stop(); });
}

void Bridge::Impl::accept() {
  acceptor.async_accept([this](beast::error_code ec, tcp::socket socket) {
    if (stopped) return;
    if (!ec) std::make_shared<HttpSession>(*this, std::move(socket))->start();
    accept();
  });
}

void Bridge::Impl::opened(const std::shared_ptr<Session>& s) {
  if (stopped) return s->close(websocket::close_code::going_away, "the node is stopping", false);
  sessions[s->id()] = s;
  ++connections;
}

void Bridge::Impl::closed(ConnId id) {
  auto it = sessions.find(id);
  if (it == sessions.end()) return;
  Session& s = *it->second;
  for (const auto& room : s.rooms) stop_following(id, room);
  if (auto devices = read_followers.find(s.user());
      devices != read_followers.end() && devices->second.erase(id) && devices->second.empty()) {
    read_followers.erase(devices);
    rooms_sub.set(zmq::sockopt::unsubscribe, transport::read_topic(s.user()));
    rooms_watch->poke();
  }
  if (!s.presence_session.empty())
    send_presence(transport::SessionClose{s.presence_session}, std::nullopt, {Kind::ignore});
  --connections;
  sessions.erase(it);
}

void Bridge::Impl::stop_following(ConnId conn, const std::string& room) {
  if (delivery.unfollow(conn, room)) room_topic(room, false);
  auto f = presence_followers.find(room);
  if (f != presence_followers.end() && f->second.erase(conn) && f->second.empty()) {
    presence_followers.erase(f);
    presence_topic(room, false);
  }
}

bool Bridge::Impl::end_subscription(Session& s, const std::string& room, std::string_view reason) {
  if (!s.rooms.erase(room)) return false;
  stop_following(s.id(), room);
  s.reply(MapWriter(s.binary(), 4)
              .u64("v", transport::kProtocolVersion)
              .str("op", "unsubscribed")
              .str("room", room)
              .str("reason", reason)
              .take());
  return true;
}

void Bridge::Impl::topic(zmq::socket_t& sub, ZmqWatch& watch, const std::string& room, bool on) {
  const std::string topic = room + '\0';  // the room exactly (docs/PROTOCOL.md section 2.2)
  if (on)
    sub.set(zmq::sockopt::subscribe, topic);
  else
    sub.set(zmq::sockopt::unsubscribe, topic);
  watch.poke();
}

bool Bridge::Impl::send_chat(transport::RequestBody body, std::optional<std::string> as, Pending p) {
  const std::uint64_t id = next_request++;
  const std::string frame = transport::encode_request({id, std::move(body), std::move(as)});
  return send_frame(chat, *chat_watch, frame, id, std::move(p));
}

bool Bridge::Impl::send_presence(transport::PresenceRequestBody body, std::optional<std::string> as, Pending p) {
  const std::uint64_t id = next_request++;
  const std::string frame = transport::encode_presence_request({id, std::move(body), std::move(as)});
  p.to_presence = true;
  return send_frame(presence, *presence_watch, frame, id, std::move(p));
}

bool Bridge::Impl::send_frame(zmq::socket_t& socket, ZmqWatch& watch, const std::string& frame, std::uint64_t id,
                              Pending p) {
  const bool sent = socket.send(zmq::buffer(frame), zmq::send_flags::dontwait).has_value();
  watch.poke();
  if (!sent) return false;
  if (p.kind != Kind::ignore) {
    if (Session* s = find(p.conn); s && p.kind != Kind::heartbeat) ++s->in_flight;
    pending.emplace(id, std::move(p));
    deadlines.emplace_back(SteadyClock::now() + options.request_timeout, id);
  }
  return true;
}

void Bridge::Impl::on_frame(Session& s, bool binary, std::string_view data) {
  using Handler = bridge::ClientOp::Handler;
  using Rate = bridge::ClientOp::Rate;
  auto read = bridge::read_client_frame(binary, data, options.limits, scratch);
  if (auto* error = std::get_if<bridge::FrameError>(&read)) {
    refuse(s, error->id, error->code, error->message);
    if (error->close_reason) s.close(websocket::close_code::bad_payload, error->close_reason, true);
    return;
  }
  const bridge::ClientFrame& frame = std::get<bridge::ClientFrame>(read);
  transport::FieldReader req(frame.root());
  const std::uint64_t id = frame.id;
  const auto now = SteadyClock::now();
  const transport::Limits& l = options.limits;
  if (limited(s, id, s.requests.take({l.requests_per_s, l.request_burst}, now), "requests on this connection"))
    return;
  const MsgpackNode* op_field = req.find("op");
  if (op_field == nullptr || !op_field->is(MsgpackType::str))
    return refuse(s, id, "bad_field", "field 'op' must be a string");
  const std::string_view name = op_field->view();
  const bridge::ClientOp* op = bridge::find_client_op(name);
  const Handler handler = op ? op->handler : Handler::chat;

  if (op && handler == Handler::auth) return authenticate(s, id, req, binary);
  if (op && handler == Handler::ping)
    return s.reply(MapWriter(s.binary(), 3).u64("v", transport::kProtocolVersion).str("op", "ping").u64("id", id).take());
  if (!s.authenticated()) return refuse(s, id, "unauthenticated", "send 'auth' first");
  if (s.in_flight >= options.max_in_flight)
    return refuse(s, id, "rate_limited", "more than " + std::to_string(options.max_in_flight) + " requests in flight");
  if (op && handler == Handler::subscribe) return subscribe(s, id, req);
  if (op && handler == Handler::unsubscribe) return unsubscribe(s, id, req);
  if (!op) return refuse(s, id, "unknown_op", "unknown op '" + std::string(name.substr(0, 64)) + "'");
  if (op->rate == Rate::publish &&
      limited(s, id, publish_limits.take(s.user(), now), "publishes of user '" + s.user() + "'"))
    return;
  if (op->rate == Rate::typing &&
      limited(s, id, typing_limits.take(s.user(), now), "typing notices of user '" + s.user() + "'"))
    return;
  forward(s, *op, id, req);
}

void Bridge::Impl::forward(Session& s, const bridge::ClientOp& op, std::uint64_t id, transport::FieldReader& fields) {
  if (op.needs_session && s.presence_session.empty())
    return refuse(s, id, "unavailable", "no presence session on this connection");
  auto request = op.read(fields, options.limits, {s.user(), s.presence_session});
  if (!request) return refuse(s, id, errc_name(request.error().code), request.error().message);
  // Every request is made as the connection's user: the node applies the user's rights.
  std::optional<std::string> as = s.user();
  bool sent = false;
  if (auto* body = std::get_if<transport::RequestBody>(&*request)) {
    // A join the token grants is the operator's invitation: made with the node's rights,
    // marked so that chat refuses it for a user an owner removed from the room.
    if (auto* join = std::get_if<transport::Join>(body); join && s.granted.count(join->room)) {
      join->invited = true;
      as.reset();
    }
    sent = send_chat(std::move(*body), std::move(as), {Kind::forward, s.id(), id});
  } else {
    sent = send_presence(std::move(std::get<transport::PresenceRequestBody>(*request)), std::move(as),
                         {Kind::forward, s.id(), id});
  }
  if (!sent) refuse(s, id, "unavailable", "the node's queue is full; retry");
}

void Bridge::Impl::refuse(Session& s, std::uint64_t id, std::string_view code, std::string_view message) {
  ++bad_frames;
  s.reply(bridge::error_frame(s.binary(), id, code, message));
}

bool Bridge::Impl::limited(Session& s, std::uint64_t id, std::chrono::milliseconds wait, std::string_view what) {
  if (wait.count() == 0) return false;
  ++rate_limited;
  const std::string message =
      "too many " + std::string(what) + "; retry after " + std::to_string(wait.count()) + " ms";
  s.reply(bridge::error_frame(s.binary(), id, "rate_limited", message, static_cast<std::uint64_t>(wait.count())));
  return true;
}

std::optional<std::string_view> Bridge::Impl::name_field(Session& s, std::uint64_t id,
                                                         const transport::FieldReader& req, std::string_view key,
                                                         std::size_t max) {
  const MsgpackNode* field = req.find(key);
  if (field == nullptr || !field->is(MsgpackType::str)) {
    refuse(s, id, "bad_field", "field '" + std::string(key) + "' must be a string");
    return std::nullopt;
  }
  const std::string_view name = field->view();
  if (name.size() > max) {
    refuse(s, id, "too_large", std::string(key) + " longer than " + std::to_string(max) + " bytes");
    return std::nullopt;
  }
  if (!valid_name(name)) {
    refuse(s, id, "bad_field", std::string(key) + " must be non-empty, with no control characters");
    return std::nullopt;
  }
  return name;
}

void Bridge::Impl::authenticate(Session& s, std::uint64_t id, const transport::FieldReader& req, bool binary) {
  auto fail = [&](std::string_view code, std::string_view message) { refuse(s, id, code, message); };
  if (s.authenticated()) return fail("bad_field", "already authenticated as '" + s.user() + "'");
  std::string name;
  if (options.token_key) {
    // The user is the one a valid token names, never one the frame says.
    const MsgpackNode* token = req.find("token");
    if (token == nullptr || !token->is(MsgpackType::str))
      return fail("unauthenticated", "this node requires a signed user token: send 'token'");
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch());
    auto claims = transport::verify_token(token->view(), *options.token_key, static_cast<std::uint64_t>(now.count()),
                                          options.limits);
    if (!claims) return fail("unauthenticated", claims.error().message);
    name = std::move(claims->user);
    s.granted = {claims->rooms.begin(), claims->rooms.end()};
  } else {
    if (req.find("token"))
      return fail("bad_field", "this node has no token key, so it cannot check a token; send 'user'");
    const auto user = name_field(s, id, req, "user", options.limits.max_user);
    if (!user) return;
    name = *user;
  }
  s.set_user(name, binary);
  auto& devices = read_followers[name];
  if (devices.empty()) {
    rooms_sub.set(zmq::sockopt::subscribe, transport::read_topic(name));
    rooms_watch->poke();
  }
  devices.insert(s.id());
  s.presence_session = random_hex(rng);
  if (!send_presence(transport::SessionOpen{s.presence_session, name}, std::nullopt,
                     {Kind::session_open, s.id(), id})) {
    s.presence_session.clear();
    s.reply(auth_frame(s, id, false));
  }
}

std::string Bridge::Impl::auth_frame(const Session& s, std::uint64_t id, bool presence_session) const {
  return MapWriter(s.binary(), 6)
      .u64("v", transport::kProtocolVersion)
      .str("op", "auth")
      .u64("id", id)
      .str("user", s.user())
      .boolean("presence", presence_session)
      .u64("max_body", options.limits.max_body)
      .take();
}

void Bridge::Impl::subscribe(Session& s, std::uint64_t id, const transport::FieldReader& req) {
  auto fail = [&](std::string_view code, std::string_view message) { refuse(s, id, code, message); };
  const auto room = name_field(s, id, req, "room", options.limits.max_room);
  if (!room) return;
  const std::string name(*room);
  std::optional<std::uint64_t> after;
  if (const MsgpackNode* a = req.find("after")) {
    if (!a->is(MsgpackType::positive_integer)) return fail("bad_field", "field 'after' must be an unsigned integer");
    after = a->via.u64;
  }
  const bool events = flag(req, "presence", true);
  if (!s.rooms.count(name) && s.rooms.size() >= options.max_subscriptions)
    return fail("too_many_subscriptions",
                "a connection follows at most " + std::to_string(options.max_subscriptions) + " rooms");
  // Topic first, then last_seq: whatever is published after the answer was read
  // arrives live (docs/PROTOCOL.md section 5).
  if (delivery.expect(name)) room_topic(name, true);
  s.rooms.insert(name);
  // As the user: a private room is no_such_room to a non-member.
  if (!send_chat(transport::LastSeq{name}, s.user(), {Kind::subscribe, s.id(), id, name, after, events})) {
    if (delivery.cancel(name)) room_topic(name, false);
    fail("unavailable", "the node's queue is full; retry");
  }
}

void Bridge::Impl::unsubscribe(Session& s, std::uint64_t id, const transport::FieldReader& req) {
  const MsgpackNode* room = req.find("room");
  if (room == nullptr || !room->is(MsgpackType::str)) return refuse(s, id, "bad_field", "field 'room' must be a string");
  const std::string name(room->view());
  const bool was = s.rooms.erase(name) > 0;
  stop_following(s.id(), name);
  s.reply(MapWriter(s.binary(), 5)
              .u64("v", transport::kProtocolVersion)
              .str("op", "unsubscribe")
              .u64("id", id)
              .str("room", name)
              .boolean("unsubscribed", was)
              .take());
}

void Bridge::Impl::on_reply(zmq::socket_t& socket, bool from_presence) {
  zmq::message_t frame;
  if (!socket.recv(frame, zmq::recv_flags::dontwait)) return;
  while (frame.more()) {  // one frame per reply; anything else is skipped
    zmq::message_t rest;
    if (!socket.recv(rest, zmq::recv_flags::dontwait)) break;
    frame = std::move(rest);
  }
  // Read once, typed: the id finds the request, the body is what its client gets.
  const std::string_view bytes = transport::view(frame);
  if (from_presence) {
    auto reply = transport::decode_presence_reply(bytes, from_node);
    if (!reply) return on_unreadable(bytes, true, reply.error());
    if (auto p = take_pending(reply->id)) answer(*p, std::move(*reply));
  } else {
    auto reply = transport::decode_reply(bytes, from_node);
    if (!reply) return on_unreadable(bytes, false, reply.error());
    if (auto p = take_pending(reply->id)) answer(*p, std::move(*reply));
  }
}

std::optional<Bridge::Impl::Pending> Bridge::Impl::take_pending(std::uint64_t id) {
  auto it = pending.find(id);
  if (it == pending.end()) return std::nullopt;  // answered already (timed out)
  Pending p = std::move(it->second);
  pending.erase(it);
  if (Session* s = find(p.conn); s && p.kind != Kind::heartbeat && s->in_flight > 0) --s->in_flight;
  return p;
}

void Bridge::Impl::on_unreadable(std::string_view frame, bool from_presence, const Error& why) {
  spdlog::warn("bridge: an unreadable reply from the node ({} bytes): {}", frame.size(), why.message);
  auto map = transport::unpack_map(frame, from_node);
  std::uint64_t id = 0;
  if (!map || !transport::FieldReader(map->root()).u64("id", id)) return;
  auto p = take_pending(id);
  if (!p) return;
  const transport::ErrorReply error{errc::internal, "the node's reply could not be read: " + why.message};
  if (from_presence) answer(*p, transport::PresenceReply{id, error});
  else answer(*p, transport::Reply{id, error});
}

void Bridge::Impl::expire(const Pending& p) {
  const transport::ErrorReply error{errc::unavailable, "the node did not answer in time"};
  if (p.to_presence) answer(p, transport::PresenceReply{0, error});
  else answer(p, transport::Reply{0, error});
}

void Bridge::Impl::answer(const Pending& p, transport::Reply reply) {
  const auto* error = std::get_if<transport::ErrorReply>(&reply.body);
  Session* s = find(p.conn);
  switch (p.kind) {
    case Kind::ignore:
    case Kind::heartbeat:
    case Kind::session_open:  // presence's (the other answer)
      return;
    case Kind::forward:
      if (!s) return;
      reply.id = p.client_id;
      return s->reply(s->binary() ? transport::encode_reply(reply) : bridge::reply_json(reply));
    case Kind::subscribe: {
      const auto* last = std::get_if<transport::LastSeqOk>(&reply.body);
      if (!last || !s) {
        if (delivery.cancel(p.room)) room_topic(p.room, false);
        if (!s) return;
        s->rooms.erase(p.room);
        if (!error) return s->reply(bridge::error_frame(s->binary(), p.client_id, "internal", "last_seq without a seq"));
        reply.id = p.client_id;
        return s->reply(s->binary() ? transport::encode_reply(reply) : bridge::reply_json(reply));
      }
      if (!s->rooms.count(p.room)) {  // unsubscribed meanwhile
        if (delivery.cancel(p.room)) room_topic(p.room, false);
        return;
      }
      const std::uint64_t after = p.after.value_or(last->seq);
      s->reply(MapWriter(s->binary(), 6)
                   .u64("v", transport::kProtocolVersion)
                   .str("op", "subscribe")
                   .u64("id", p.client_id)
                   .str("room", p.room)
                   .u64("last_seq", last->seq)
                   .u64("after", after)
                   .take());
      if (p.presence_events) {
        auto& followers = presence_followers[p.room];
        if (followers.empty()) presence_topic(p.room, true);
        followers.insert(s->id());
      }
      delivery.follow(s->id(), p.room, after, last->seq, SteadyClock::now());
      DeliveryActions actions;
      return carry_out(actions);
    }
    case Kind::recheck:  // the user left the room: may they still follow it?
      if (error && error->code == errc::no_such_room && s)
        end_subscription(*s, p.room, "the room was deleted, or it is private and you are no longer a member");
      return;
    case Kind::fetch: {  // a page of history the bridge asked for, read into typed messages
      auto* page = std::get_if<transport::HistoryOk>(&reply.body);
      if (!page) return delivery.on_fetch_failed(p.room, p.after.value_or(0), SteadyClock::now());
      std::vector<SeqFrame> messages;
      messages.reserve(page->messages.size());
      for (const auto& m : page->messages) messages.push_back({m.seq, message_frame(m)});
      DeliveryActions actions;
      delivery.on_history(p.room, p.after.value_or(0), std::move(messages), page->more, SteadyClock::now(), actions,
                          page->first_seq);
      return carry_out(actions);
    }
    case Kind::quiet_check: {
      const auto* last = std::get_if<transport::LastSeqOk>(&reply.body);
      if (!last) return delivery.on_last_seq_failed(p.room, SteadyClock::now());
      delivery.on_last_seq(p.room, last->seq);
      DeliveryActions actions;
      return carry_out(actions);
    }
  }
}

void Bridge::Impl::answer(const Pending& p, transport::PresenceReply reply) {
  const auto* error = std::get_if<transport::ErrorReply>(&reply.body);
  Session* s = find(p.conn);
  switch (p.kind) {
    case Kind::forward:
      if (!s) return;
      reply.id = p.client_id;
      return s->reply(s->binary() ? transport::encode_presence_reply(reply) : bridge::presence_reply_json(reply));
    case Kind::heartbeat:
      if (s && error && error->code == errc::unknown_session)  // the node forgot it: open it again
        send_presence(transport::SessionOpen{s->presence_session, s->user()}, std::nullopt, {Kind::ignore});
      return;
    case Kind::session_open: {
      if (!s) return;
      if (const auto* opened = std::get_if<transport::SessionOpenOk>(&reply.body)) {
        if (opened->heartbeat_ms > 0 && std::chrono::milliseconds(opened->heartbeat_ms) != heartbeat_interval) {
          heartbeat_interval = std::chrono::milliseconds(opened->heartbeat_ms);
          arm_heartbeat();  // at once, with the node's interval
        }
        return s->reply(auth_frame(*s, p.client_id, true));
      }
      spdlog::info("bridge: no presence session for {}: {}", s->user(), error ? error->message : "");
      s->presence_session.clear();
      return s->reply(auth_frame(*s, p.client_id, false));
    }
    default:  // chat's (the other answer)
      return;
  }
}

void Bridge::Impl::carry_out(DeliveryActions& actions) {
  // Messages a subscription asked for that the room no longer holds: said before the
  // messages that follow them.
  for (const auto& t : actions.truncated)
    for (ConnId c : t.to)
      if (Session* s = find(c))
        s->reply(MapWriter(s->binary(), 4)
                     .u64("v", transport::kProtocolVersion)
                     .str("op", "truncated")
                     .str("room", t.room)
                     .u64("first_seq", t.first_seq)
                     .take());
  for (const auto& d : actions.deliver)
    for (ConnId c : d.to)
      if (Session* s = find(c)) s->send(d.frame, s->binary());
  delivery.plan(actions);  // now that the queues hold what was delivered
  for (const auto& f : actions.fetch) {
    ++fetches;
    if (!send_chat(transport::History{f.room, f.limit, std::nullopt, f.after}, std::nullopt,
                   {Kind::fetch, 0, 0, f.room, f.after}))
      delivery.on_fetch_failed(f.room, f.after, SteadyClock::now());
  }
  for (const auto& room : actions.last_seq)
    if (!send_chat(transport::LastSeq{room}, std::nullopt, {Kind::quiet_check, 0, 0, room}))
      delivery.on_last_seq_failed(room, SteadyClock::now());
  actions = {};
}

std::size_t Bridge::Impl::budget(ConnId conn) {
  Session* s = find(conn);
  if (!s) return 0;
  // Half the queue, and a quarter of its bytes, must be free before a page is asked
  // (the node caps a page's bodies at 4 MiB); else wait for the queue to drain.
  const std::size_t half = options.max_queued_frames / 2;
  if (s->queued() > half || s->queued_bytes() > options.max_queued_bytes / 4) {
    s->wants_resume = true;
    return 0;
  }
  return std::max<std::size_t>(options.max_queued_frames - s->queued() - half / 2, 1);
}

void Bridge::Impl::resume(ConnId conn) {
  Session* s = find(conn);
  if (!s) return;
  DeliveryActions actions;
  for (const auto& room : s->rooms) delivery.resume(conn, room);
  carry_out(actions);
}

void Bridge::Impl::on_room_message() {
  std::vector<zmq::message_t> parts;
  if (!transport::recv_multipart_nowait(rooms_sub, parts) || parts.size() != 2) return;
  if (transport::view(parts[0]) == transport::heads_topic()) {
    if (auto heads = transport::decode_heads(transport::view(parts[1]), options.limits))
      delivery.on_heads(heads->node, heads->number, heads->rooms, SteadyClock::now());
    DeliveryActions actions;
    return carry_out(actions);
  }
  const auto topic = transport::view(parts[0]);
  if (transport::is_read_topic(topic)) return on_read_event(transport::view(parts[1]));
  const auto room = transport::room_of_topic(topic);
  if (!room) return;
  // Read typed and checked; its msgpack goes to binary connections as it came.
  const auto event = transport::view(parts[1]);
  auto m = transport::decode_message(event, from_node);
  if (!m) return;
  DeliveryActions actions;
  delivery.on_live(std::string(*room), {m->seq, message_frame(*m, event)},
                   SteadyClock::now(), actions);
  carry_out(actions);
}

void Bridge::Impl::on_read_event(std::string_view bytes) {
  auto event = transport::decode_read_event(bytes, from_node);
  if (!event) return;
  auto devices = read_followers.find(event->user);
  if (devices == read_followers.end()) return;
  using K = transport::ReadEvent::Kind;
  if (event->kind == K::disconnect) {  // an operator's disconnect: every connection of the user closes
    const std::vector<ConnId> conns(devices->second.begin(), devices->second.end());
    for (ConnId c : conns)
      if (Session* s = find(c)) s->close(static_cast<websocket::close_code>(4009), "disconnected by an operator", false);
    return;
  }
  if (event->kind == K::kicked) {  // kicked from a room: following it ends on each connection of the user
    for (ConnId c : devices->second)
      if (Session* s = find(c)) end_subscription(*s, event->room, "you were kicked from the room");
    return;
  }
  if (event->kind == K::left) {  // no longer a member: may they still follow it? (ask as them)
    for (ConnId c : devices->second)
      if (Session* s = find(c); s && s->rooms.count(event->room))
        send_chat(transport::LastSeq{event->room}, s->user(), {Kind::recheck, c, 0, event->room});
    return;
  }
  // Pushed, no id: {"v": 1, "op": "read", "room": ROOM, "seq": SEQ} (docs/PROTOCOL.md 10.2).
  auto frame_of = [&](bool binary) {
    return bridge::MapWriter(binary, 4)
        .u64("v", transport::kProtocolVersion)
        .str("op", "read")
        .str("room", event->room)
        .u64("seq", event->seq)
        .take();
  };
  const SharedFrame frame = std::make_shared<const OutFrame>(OutFrame{frame_of(false), frame_of(true)});
  for (ConnId c : devices->second)
    if (Session* s = find(c)) s->send(frame, s->binary());
}

void Bridge::Impl::on_presence_event() {
  std::vector<zmq::message_t> parts;
  if (!transport::recv_multipart_nowait(presence_sub, parts) || parts.size() != 2) return;
  const auto topic = transport::view(parts[0]);
  const auto room = transport::room_of_topic(topic);
  if (!room) return;
  auto followers = presence_followers.find(*room);
  if (followers == presence_followers.end()) return;
  // Read typed and checked; its msgpack goes to binary connections as it came.
  const auto bytes = transport::view(parts[1]);
  auto event = transport::decode_presence_event(bytes, from_node);
  if (!event) return;
  const SharedFrame frame =
      std::make_shared<const OutFrame>(OutFrame{bridge::presence_event_json(*event), std::string(bytes)});
  for (ConnId c : followers->second)
    if (Session* s = find(c)) s->send(frame, s->binary());
}

void Bridge::Impl::tick() {
  const auto now = SteadyClock::now();
  // Requests the node has not answered in time.
  while (!deadlines.empty() && deadlines.front().first <= now) {
    const auto id = deadlines.front().second;
    deadlines.pop_front();
    if (auto p = take_pending(id)) expire(*p);
  }
  // Connections that did not authenticate in time.
  std::vector<Session*> late;
  for (auto& [id, s] : sessions)
    if (!s->authenticated() && now - s->opened_at() > options.handshake_timeout) late.push_back(s.get());
  for (Session* s : late) s->close(kCloseAuthTimeout, "no auth in time", false);
  DeliveryActions actions;
  delivery.tick(now, actions);
  carry_out(actions);
  if (stopped) return;
  tick_timer.expires_after(std::chrono::milliseconds(100));
  tick_timer.async_wait([this](beast::error_code ec) {
    if (!ec) tick();
  });
}

void Bridge::Impl::arm_heartbeat() {
  heartbeat_timer.expires_after(heartbeat_interval);  // cancels a wait already armed
  heartbeat_timer.async_wait([this](beast::error_code ec) {
    if (!ec) heartbeat();
  });
}

void Bridge::Impl::heartbeat() {
  for (auto& [id, s] : sessions)
    if (!s->presence_session.empty())
      send_presence(transport::Heartbeat{s->presence_session}, std::nullopt, {Kind::heartbeat, id});
  if (stopped) return;
  arm_heartbeat();
}

// ---- Bridge ------------------------------------------------------------------------

std::optional<BridgeAddress> parse_bridge_address(std::string_view text) {
  auto address = router::parse_host_port(text);
  if (!address) return std::nullopt;
  return BridgeAddress{std::move(address->host), address->port};
}

Result<std::unique_ptr<Bridge>> Bridge::start(zmq::context_t& context, BridgeOptions options) {
  auto impl = std::make_unique<Impl>(context, std::move(options));
  if (auto tls = net::load_tls(impl->tls, impl->options.tls_cert, impl->options.tls_key, "the bridge"); !tls)
    return tls.error();
  if (!impl->options.web_root.empty()) {
    auto files = bridge::StaticFiles::open(impl->options.web_root);
    if (!files) return files.error();
    impl->files = std::move(*files);
  }
  std::vector<std::string> admitted = impl->options.allowed_origins;
  admitted.insert(admitted.end(), impl->options.peer_bridges.begin(), impl->options.peer_bridges.end());
  auto policy = bridge::make_origin_policy(admitted);
  if (!policy) return make_error(errc::bad_field, "the bridge's allowed origins: " + policy.error().message);
  impl->origin_policy = std::move(*policy);
  for (const auto& origin : impl->options.peer_bridges)  // http://h:p -> ws://h:p, https://h:p -> wss://h:p
    impl->peer_connect += (origin.starts_with("https://") ? " wss://" + origin.substr(8) : " ws://" + origin.substr(7));
  try {
    impl->start();
  } catch (const std::exception& e) {
    return make_error(errc::unavailable, "cannot start the WebSocket bridge on " + impl->options.address + ":" +
                                             std::to_string(impl->options.port) + ": " + e.what());
  }
  return std::unique_ptr<Bridge>(new Bridge(std::move(impl)));
}

Bridge::Bridge(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Bridge::~Bridge() { stop(); }

void Bridge::stop() {
  if (!impl_ || !impl_->thread.joinable()) return;
  asio::post(impl_->ioc, [impl = impl_.get()] { impl->shutdown(); });
  impl_->thread.join();
}

std::uint16_t Bridge::port() const noexcept { return impl_->bound_port; }

std::string Bridge::url() const {
  return (impl_->tls ? "wss://" : "ws://") +
         router::format_host_port(asio::ip::make_address(impl_->options.address).to_string(), port()) + "/";
}

BridgeStats Bridge::stats() const {
  return {impl_->connections.load(), impl_->delivered.load(), impl_->slow_closed.load(), impl_->bad_frames.load(),
          impl_->fetches.load(), impl_->rate_limited.load()};
}

}  // namespace switchboard::actors
