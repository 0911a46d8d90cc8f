#include "switchboard/actors/webhook/webhook_sender.hpp"

#include <atomic>
#include <functional>
#include <map>
#include <set>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <sodium.h>
#include <spdlog/spdlog.h>

#include "switchboard/actors/bridge/json_codec.hpp"
#include "switchboard/actors/net/zmq_watch.hpp"
#include "switchboard/actors/webhook/notifications.hpp"
#include "switchboard/actors/webhook/presence_queue.hpp"
#include "switchboard/actors/grants.hpp"
#include "switchboard/common/event_rooms.hpp"
#include "switchboard/common/overloaded.hpp"
#include "switchboard/transport/codec.hpp"
#include "switchboard/transport/presence_messages.hpp"

namespace switchboard::actors {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using webhook::Clock;

namespace webhook {

std::string event_id(std::string_view room, std::uint64_t seq) {
  if (is_events_room(room)) return "e:" + id_escape(room_of_events(room)) + ":" + std::to_string(seq);
  return "m:" + id_escape(room) + ":" + std::to_string(seq);
}

namespace {
void write_event(bridge::JsonWriter& w, std::string_view webhook, std::string_view node,
                 const transport::RoomMessage& m) {
  if (is_events_room(m.room)) {  // a membership or room event: stored as the JSON it is posted as
    w.begin_object().str("id", event_id(m.room, m.seq)).str("webhook", webhook).str("node", node).u64("n", m.seq);
    w.members(m.body).end_object();
    return;
  }
  w.begin_object()
      .str("id", event_id(m.room, m.seq))
      .str("type", "message")
      .str("webhook", webhook)
      .str("node", node)
      .str("room", m.room)
      .u64("seq", m.seq)
      .str("user", m.user)
      .u64("ts", m.ts_ms)
      .str("body", m.body)
      .str("cmid", m.client_msg_id);
  w.key("mentions").begin_array();
  for (const auto& u : m.mentions) w.str(u);
  w.end_array();
  if (!m.entry.plain()) bridge::write_entry_fields(w, m.entry);
  w.end_object();
}
}  // namespace

std::string event_json(std::string_view webhook, std::string_view node, const transport::RoomMessage& message) {
  bridge::JsonWriter w(256 + message.body.size());
  write_event(w, webhook, node, message);
  return w.take();
}

std::string request_body(std::string_view webhook, std::string_view node,
                         const std::vector<transport::RoomMessage>& events) {
  if (events.size() == 1) return event_json(webhook, node, events.front());
  std::size_t size = 2;
  for (const auto& m : events) size += 256 + m.body.size();
  bridge::JsonWriter w(size);
  w.begin_array();
  for (const auto& m : events) write_event(w, webhook, node, m);
  w.end_array();
  return w.take();
}

std::string signature(std::string_view secret, std::uint64_t timestamp_s, std::string_view body) {
  crypto_auth_hmacsha256_state state;
  crypto_auth_hmacsha256_init(&state, reinterpret_cast<const unsigned char*>(secret.data()), secret.size());
  const std::string stamp = std::to_string(timestamp_s) + ".";
  crypto_auth_hmacsha256_update(&state, reinterpret_cast<const unsigned char*>(stamp.data()), stamp.size());
  crypto_auth_hmacsha256_update(&state, reinterpret_cast<const unsigned char*>(body.data()), body.size());
  unsigned char mac[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256_final(&state, mac);
  char hex[crypto_auth_hmacsha256_BYTES * 2 + 1];
  sodium_bin2hex(hex, sizeof hex, mac, sizeof mac);
  return "v1=" + std::string(hex);
}

}  // namespace webhook

namespace {

/// Most of a receiver's answer read (its body is not used).
constexpr std::size_t kAnswerLimit = 64 * 1024;

struct Hook;

/// One keep-alive connection to a webhook's receiver, carrying one request at a time.
class HttpConnection : public std::enable_shared_from_this<HttpConnection> {
 public:
  using Done = std::function<void(bool taken, unsigned status, std::string why)>;
  HttpConnection(asio::io_context& ioc, Hook& hook);
  /// Sends `request` and calls `done` with the answer; on a connection that was idle
  /// and turns out closed by the receiver, once more on a new one.
  void send(std::shared_ptr<http::request<http::string_body>> request, Done done);
  bool open() const noexcept { return connected_; }

 private:
  void connect();
  void write();
  void fail(const std::string& why);
  beast::tcp_stream& lowest();

  asio::io_context& ioc_;
  Hook& hook_;
  tcp::resolver resolver_;
  std::optional<beast::tcp_stream> plain_;
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls_;
  bool connected_ = false, reused_ = false;
  beast::flat_buffer buffer_;
  std::shared_ptr<http::request<http::string_body>> request_;
  std::optional<http::response_parser<http::string_body>> parser_;
  Done done_;
};

/// A notifications webhook's Post on its way: the room's audience and who of it is
/// online are asked for; once both are in, its notifications go one after another.
struct Gather {
  std::vector<transport::RoomMessage> events;
  std::optional<webhook::Audience> audience;
  std::optional<std::set<std::string, std::less<>>> online;
  std::vector<webhook::Notification> notifications;
  std::size_t sent = 0;
};

/// A webhook: what it owes (Deliveries) and its connections.
struct Hook {
  WebhookTarget target;
  webhook::Deliveries deliveries;
  std::optional<ssl::context> tls;
  std::vector<std::shared_ptr<HttpConnection>> idle;
  bool failing = false;  ///< logged as failing, not yet as taking requests again
  std::map<std::string, Gather, std::less<>> gathering;  ///< notifications: by room
  webhook::PresenceQueue presence_queue;  ///< presence events (target.presence)
  explicit Hook(WebhookTarget t)
      : target(std::move(t)),
        deliveries(target.delivery),
        presence_queue({10'000, target.delivery.max_batch, target.delivery.retry_min, target.delivery.retry_max}) {}
};

HttpConnection::HttpConnection(asio::io_context& ioc, Hook& hook) : ioc_(ioc), hook_(hook), resolver_(ioc) {}

beast::tcp_stream& HttpConnection::lowest() { return tls_ ? beast::get_lowest_layer(*tls_) : *plain_; }

void HttpConnection::send(std::shared_ptr<http::request<http::string_body>> request, Done done) {
  request_ = std::move(request);
  done_ = std::move(done);
  reused_ = connected_;
  if (connected_) return write();
  connect();
}

void HttpConnection::fail(const std::string& why) {
  const bool retry_fresh = reused_;
  connected_ = false;
  plain_.reset();
  tls_.reset();
  if (retry_fresh) {  // the receiver closed an idle connection: once more on a new one
    reused_ = false;
    return connect();
  }
  auto done = std::move(done_);
  done_ = nullptr;
  if (done) done(false, 0, why);
}

void HttpConnection::connect() {
  const auto& url = hook_.target.parsed;
  if (url.tls) {
    tls_.emplace(ioc_, *hook_.tls);
    if (!SSL_set_tlsext_host_name(tls_->native_handle(), url.host.c_str())) return fail("cannot set the TLS server name");
    tls_->set_verify_callback(ssl::host_name_verification(url.host));
  } else {
    plain_.emplace(ioc_);
  }
  lowest().expires_after(hook_.target.timeout);
  resolver_.async_resolve(
      url.host, std::to_string(url.port),
      [self = shared_from_this()](beast::error_code ec, tcp::resolver::results_type results) {
        if (ec) return self->fail("cannot resolve " + self->hook_.target.parsed.host + ": " + ec.message());
        self->lowest().async_connect(results, [self](beast::error_code ec, const tcp::endpoint&) {
          if (ec) return self->fail("cannot connect: " + ec.message());
          beast::error_code ignored;
          self->lowest().socket().set_option(tcp::no_delay(true), ignored);
          if (!self->tls_) {
            self->connected_ = true;
            return self->write();
          }
          self->tls_->async_handshake(ssl::stream_base::client, [self](beast::error_code ec) {
            if (ec) return self->fail("TLS handshake failed: " + ec.message());
            self->connected_ = true;
            self->write();
          });
        });
      });
}

void HttpConnection::write() {
  lowest().expires_after(hook_.target.timeout);
  auto on_read = [self = shared_from_this()](beast::error_code ec, std::size_t) {
    if (ec) return self->fail(ec == beast::error::timeout ? "no answer within " +
                                                                std::to_string(self->hook_.target.timeout.count()) + " ms"
                                                          : "reading the answer: " + ec.message());
    const auto& answer = self->parser_->get();
    const unsigned status = answer.result_int();
    if (!answer.keep_alive()) {
      self->connected_ = false;
      self->plain_.reset();
      self->tls_.reset();
    }
    auto done = std::move(self->done_);
    self->done_ = nullptr;
    done(status >= 200 && status < 300, status, "");
  };
  auto on_written = [self = shared_from_this(), on_read](beast::error_code ec, std::size_t) {
    if (ec) return self->fail("sending the request: " + ec.message());
    self->reused_ = false;  // it was written: an error now is the receiver's answer, not a stale connection
    self->parser_.emplace();
    self->parser_->body_limit(kAnswerLimit);
    if (self->tls_) http::async_read(*self->tls_, self->buffer_, *self->parser_, on_read);
    else http::async_read(*self->plain_, self->buffer_, *self->parser_, on_read);
  };
  if (tls_) http::async_write(*tls_, *request_, on_written);
  else http::async_write(*plain_, *request_, on_written);
}

}  // namespace

struct WebhookSender::Impl {
  WebhookSenderOptions options;
  asio::io_context ioc;
  zmq::socket_t mailbox, internal, chat, presence;
  std::unique_ptr<net::ZmqWatch> mailbox_watch, chat_watch, presence_watch;
  std::vector<std::unique_ptr<Hook>> hooks;
  asio::steady_timer timer{ioc};
  std::optional<Clock::time_point> timer_at;
  /// History requests on their way: request id -> (webhook, room).
  std::unordered_map<std::uint64_t, std::pair<Hook*, std::string>> fetches;
  /// Presence `who` requests on their way: request id -> (webhook, room).
  std::unordered_map<std::uint64_t, std::pair<Hook*, std::string>> whos;
  std::uint64_t next_id = 1;
  /// Presence events' ids: p:NODE:STARTED_MS:N, unique to this run of the node.
  const std::uint64_t started_ms = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
  std::uint64_t presence_events = 0;
  static constexpr auto kStatsEvery = std::chrono::milliseconds(100);
  Clock::time_point stats_at{};  ///< when the figures were last worked out
  bool stats_due = false;        ///< pumped since: worked out again at stats_at + kStatsEvery
  mutable std::mutex stats_mutex;
  std::vector<WebhookStats> stats;
  std::thread thread;
  std::atomic<bool> stopped{false};

  Impl(zmq::context_t& context, WebhookSenderOptions o)
      : options(std::move(o)),
        mailbox(context, zmq::socket_type::router),
        internal(context, zmq::socket_type::dealer),
        chat(context, zmq::socket_type::dealer),
        presence(context, zmq::socket_type::dealer) {}

  void setup() {
    for (zmq::socket_t* s : {&mailbox, &internal, &chat, &presence}) {
      s->set(zmq::sockopt::linger, 0);
      // Chat's sends here must never wait (its DEALER has no limit either); what the
      // sender sends is bounded by Deliveries (pages held, cursors per interval).
      s->set(zmq::sockopt::rcvhwm, 0);
      s->set(zmq::sockopt::sndhwm, 0);
    }
    mailbox.bind(options.mailbox_endpoint);
    internal.connect(options.chat_internal_endpoint);
    chat.set(zmq::sockopt::routing_id, zmq::buffer(webhook::kSenderRoutingId));  // events logs' pages come here
    chat.connect(options.chat_endpoint);
    if (!options.presence_endpoint.empty()) presence.connect(options.presence_endpoint);
    for (auto& target : options.webhooks) {
      auto hook = std::make_unique<Hook>(target);
      if (target.parsed.tls) {
        hook->tls.emplace(ssl::context::tls_client);
        hook->tls->set_default_verify_paths();  // the system's CAs (SSL_CERT_FILE, SSL_CERT_DIR)
        hook->tls->set_verify_mode(ssl::verify_peer);
      }
      hooks.push_back(std::move(hook));
    }
    mailbox_watch = std::make_unique<net::ZmqWatch>(ioc, mailbox, [this] { on_mailbox(); });
    chat_watch = std::make_unique<net::ZmqWatch>(ioc, chat, [this] { on_chat(); });
    presence_watch = std::make_unique<net::ZmqWatch>(ioc, presence, [this] { on_presence(); });
    mailbox_watch->start();
    chat_watch->start();
    presence_watch->start();
    for (auto& hook : hooks) pump(*hook);
  }

  Hook* find(std::string_view name) {
    for (auto& h : hooks)
      if (h->target.delivery.name == name) return h.get();
    return nullptr;
  }

  void on_mailbox() {
    zmq::message_t from, frame;
    if (!mailbox.recv(from, zmq::recv_flags::dontwait)) return;
    if (!from.more() || !mailbox.recv(frame, zmq::recv_flags::dontwait)) return;
    while (frame.more()) {  // not one of chat's: drop the rest
      zmq::message_t extra;
      if (!mailbox.recv(extra, zmq::recv_flags::dontwait)) break;
      frame.move(extra);
    }
    auto decoded = webhook::decode(frame.to_string_view());
    if (!decoded) return spdlog::error("webhooks: an unreadable frame from chat");
    if (const auto* c = std::get_if<webhook::Committed>(&*decoded)) {
      for (auto& hook : hooks) {
        for (const auto& r : c->rooms) hook->deliveries.committed(r.room, r.seq);
        pump(*hook);
      }
    } else if (const auto* b = std::get_if<webhook::Backlog>(&*decoded)) {
      if (Hook* hook = find(b->webhook)) {
        hook->deliveries.backlog(*b);
        pump(*hook);
      }
    } else if (const auto* p = std::get_if<webhook::PresenceChange>(&*decoded)) {
      on_presence_change(*p);
    } else if (auto* a = std::get_if<webhook::Audience>(&*decoded)) {
      if (Hook* hook = find(a->webhook))
        if (auto g = hook->gathering.find(a->room); g != hook->gathering.end() && !g->second.audience) {
          g->second.audience = std::move(*a);
          gathered(*hook, g->first);
        }
    }
  }

  /// A presence change this node tells: an event for each webhook that takes it.
  void on_presence_change(const webhook::PresenceChange& p) {
    static constexpr const char* kEvents[] = {"online", "offline", "status"};
    const std::string id = "p:" + webhook::id_escape(options.node) + ":" + std::to_string(started_ms) + ":" +
                           std::to_string(++presence_events);
    for (auto& hook : hooks) {
      const auto& d = hook->target.delivery;
      if (!hook->target.presence || !room_matches(d.users, p.user)) continue;
      bridge::JsonWriter w(192 + p.user.size() + p.text.size());
      w.begin_object()
          .str("id", id)
          .str("type", "presence")
          .str("webhook", d.name)
          .str("node", options.node)
          .str("event", kEvents[static_cast<int>(p.kind)])
          .str("user", p.user)
          .str("status", p.status)
          .str("text", p.text)
          .u64("ts", p.ts_ms)
          .end_object();
      hook->presence_queue.push({id, w.take()});
      pump(*hook);
    }
  }

  void post_presence(Hook& hook, const std::vector<webhook::PresenceQueue::Event>& events) {
    std::string body;
    if (events.size() == 1) {
      body = events.front().json;
    } else {
      body = "[";
      for (const auto& e : events) body.append(body.size() > 1 ? "," : "").append(e.json);
      body += "]";
    }
    send_request(hook, "presence events", std::move(body), events.size() == 1 ? events.front().id : std::string(),
                 events.front().id, [this, &hook](bool taken) {
                   hook.presence_queue.posted(taken, Clock::now());
                   pump(hook);
                 });
  }

  void on_presence() {
    zmq::message_t frame;
    if (!presence.recv(frame, zmq::recv_flags::dontwait)) return;
    auto reply = transport::decode_presence_reply(frame.to_string_view(), options.limits);
    if (!reply) return spdlog::error("webhooks: an unreadable reply from presence: {}", reply.error().message);
    auto it = whos.find(reply->id);
    if (it == whos.end()) return;
    auto [hook, room] = std::move(it->second);
    whos.erase(it);
    auto g = hook->gathering.find(room);
    if (g == hook->gathering.end()) return;
    std::set<std::string, std::less<>> online;
    if (const auto* who = std::get_if<transport::WhoOk>(&reply->body))
      for (const auto& u : who->users) online.insert(u.user);
    // An error (the room is gone from presence's view): nobody of it is online.
    g->second.online = std::move(online);
    gathered(*hook, room);
  }

  /// A notifications webhook's Post: ask for the room's audience and who is online.
  void gather(Hook& hook, webhook::Deliveries::Post p) {
    Gather& g = hook.gathering[p.room];
    g = Gather{};
    g.events = std::move(p.events);
    send_internal(webhook::AudienceAsk{hook.target.delivery.name, p.room});
    const std::uint64_t id = next_id++;
    whos.emplace(id, std::make_pair(&hook, p.room));
    presence.send(zmq::buffer(transport::encode_presence_request(transport::PresenceRequest{id, transport::Who{p.room}})),
                  zmq::send_flags::none);
    presence_watch->poke();
  }

  /// Both answers in: the room's notifications go, one request each, in member order.
  void gathered(Hook& hook, const std::string& room) {
    auto it = hook.gathering.find(room);
    if (it == hook.gathering.end() || !it->second.audience || !it->second.online) return;
    Gather& g = it->second;
    g.notifications = webhook::notifications_for(g.events, *g.audience, *g.online);
    g.sent = 0;
    send_next_notification(hook, room);
  }

  void send_next_notification(Hook& hook, const std::string& room) {
    auto it = hook.gathering.find(room);
    if (it == hook.gathering.end()) return;
    Gather& g = it->second;
    if (g.sent == g.notifications.size()) {  // all taken (or none to send)
      hook.gathering.erase(it);
      hook.deliveries.posted(room, true, Clock::now());
      return pump(hook);
    }
    const auto& n = g.notifications[g.sent];
    const std::string first = std::to_string(n.messages.front()->seq);
    send_request(hook, room, webhook::notification_json(hook.target.delivery.name, options.node, n),
                 webhook::notification_id(n), first, [this, &hook, room](bool taken) {
                   auto g = hook.gathering.find(room);
                   if (g == hook.gathering.end()) return;
                   if (!taken) {
                     hook.gathering.erase(g);
                     hook.deliveries.posted(room, false, Clock::now());
                     return pump(hook);
                   }
                   ++g->second.sent;
                   send_next_notification(hook, room);
                 });
  }

  void on_chat() {
    zmq::message_t frame;
    if (!chat.recv(frame, zmq::recv_flags::dontwait)) return;
    auto reply = transport::decode_reply(frame.to_string_view(), options.limits);
    if (!reply) return spdlog::error("webhooks: an unreadable reply from chat: {}", reply.error().message);
    auto it = fetches.find(reply->id);
    if (it == fetches.end()) return;
    auto [hook, room] = std::move(it->second);
    fetches.erase(it);
    if (auto* ok = std::get_if<transport::HistoryOk>(&reply->body)) {
      hook->deliveries.page(room, std::move(ok->messages), ok->first_seq, Clock::now());
    } else {
      if (const auto* e = std::get_if<transport::ErrorReply>(&reply->body))
        spdlog::debug("webhooks: reading '{}' for {}: {}", room, hook->target.delivery.name, e->message);
      hook->deliveries.page_failed(room, Clock::now());
    }
    pump(*hook);
  }

  void pump(Hook& hook) {
    const auto now = Clock::now();
    for (auto& action : hook.deliveries.actions(now)) {
      std::visit(Overloaded{
                     [&](webhook::Deliveries::Fetch& f) {
                       const std::uint64_t id = next_id++;
                       fetches.emplace(id, std::make_pair(&hook, f.room));
                       const auto limit = static_cast<std::uint32_t>(f.limit);
                       if (is_events_room(f.room))  // no client may name it: asked on chat's internal mailbox
                         return send_internal(webhook::Fetch{id, f.room, f.after, limit});
                       transport::History h{f.room, limit, std::nullopt, f.after};
                       chat.send(zmq::buffer(transport::encode_request(transport::Request{id, std::move(h)})),
                                 zmq::send_flags::none);
                       chat_watch->poke();
                     },
                     [&](webhook::Deliveries::Post& p) {
                       if (hook.target.notifications) gather(hook, std::move(p));
                       else post(hook, std::move(p));
                     },
                     [&](webhook::Deliveries::StoreCursor& c) {
                       send_internal(webhook::Cursor{hook.target.delivery.name, c.room, c.seq});
                     },
                     [&](webhook::Deliveries::AskBacklog& a) {
                       const auto& d = hook.target.delivery;
                       send_internal(webhook::BacklogAsk{d.name, a.after, a.room, d.rooms, d.messages,
                                                         d.membership || d.room});
                     },
                 },
                 action);
    }
    if (auto events = hook.presence_queue.next(now); !events.empty()) post_presence(hook, events);
    auto wake = hook.deliveries.next_wake();
    if (auto retry = hook.presence_queue.wake()) wake = std::min(wake, *retry);
    // The metrics' figures walk every room a webhook knows: worked out at most every
    // kStatsEvery, not per event (a timer makes sure the last change shows).
    if (now >= stats_at + kStatsEvery) {
      publish_stats();
      stats_at = now;
      stats_due = false;
    } else {
      stats_due = true;
    }
    if (stats_due) wake = std::min(wake, stats_at + kStatsEvery);
    arm(wake);
  }

  void send_internal(const webhook::Frame& frame) {
    internal.send(zmq::buffer(webhook::encode(frame)), zmq::send_flags::none);
  }

  void arm(Clock::time_point at) {
    // One timer for every webhook: the earliest wake any asked for.
    if (timer_at && *timer_at <= at && *timer_at > Clock::now()) return;
    timer_at = at;
    timer.expires_at(at);
    timer.async_wait([this](beast::error_code ec) {
      if (ec) return;
      timer_at.reset();
      for (auto& hook : hooks) pump(*hook);
    });
  }

  void post(Hook& hook, webhook::Deliveries::Post p) {
    std::string body = webhook::request_body(hook.target.delivery.name, options.node, p.events);
    const std::string id = p.events.size() == 1 ? webhook::event_id(p.room, p.events.front().seq) : std::string();
    const std::string first = std::to_string(p.events.front().seq);
    send_request(hook, p.room, std::move(body), id, first, [this, &hook, room = p.room](bool taken) {
      hook.deliveries.posted(room, taken, Clock::now());
      pump(hook);
    });
  }

  /// POSTs `body` (signed; with `event_id` as X-Switchboard-Event-Id unless empty) to the
  /// hook's receiver on an idle connection or a new one; `done(taken)` once answered.
  void send_request(Hook& hook, const std::string& room, std::string body, const std::string& event_id,
                    const std::string& first_seq, std::function<void(bool)> done) {
    const auto& t = hook.target;
    auto request = std::make_shared<http::request<http::string_body>>(http::verb::post, t.parsed.target, 11);
    request->set(http::field::host, router::format_host_port(t.parsed.host, t.parsed.port));
    request->set(http::field::user_agent, "Switchboard-Webhook/1");
    request->set(http::field::content_type, "application/json");
    request->body() = std::move(body);
    const auto stamp = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count());
    request->set("X-Switchboard-Timestamp", std::to_string(stamp));
    request->set("X-Switchboard-Signature", webhook::signature(t.secret, stamp, request->body()));
    if (!event_id.empty()) request->set("X-Switchboard-Event-Id", event_id);
    request->keep_alive(true);
    request->prepare_payload();

    std::shared_ptr<HttpConnection> conn;
    if (!hook.idle.empty()) {
      conn = std::move(hook.idle.back());
      hook.idle.pop_back();
    } else {
      conn = std::make_shared<HttpConnection>(ioc, hook);
    }
    conn->send(std::move(request), [&hook, conn, room, first_seq, done = std::move(done)](bool taken, unsigned status,
                                                                                      std::string why) {
      if (conn->open()) hook.idle.push_back(conn);
      const auto& name = hook.target.delivery.name;
      if (taken) {
        if (hook.failing) spdlog::info("webhook {}: {} takes requests again", name, hook.target.url);
        hook.failing = false;
      } else {
        if (why.empty()) why = "answered " + std::to_string(status);
        // The first failure of a run at warn, the retries after it at debug.
        if (!hook.failing)
          spdlog::warn("webhook {}: {} ({} seq {}): {}; retrying", name, hook.target.url, room, first_seq, why);
        else
          spdlog::debug("webhook {}: {} ({} seq {}): {}; retrying", name, hook.target.url, room, first_seq, why);
        hook.failing = true;
      }
      done(taken);
    });
  }

  void publish_stats() {
    std::vector<WebhookStats> now;
    now.reserve(hooks.size());
    for (const auto& h : hooks) {
      webhook::Stats s = h->deliveries.stats();
      const auto& q = h->presence_queue;  // presence events count with the rest
      s.delivered += q.delivered();
      s.failures += q.failures();
      s.skipped += q.dropped();
      s.pending += q.held();
      if (q.failing_since()) {
        s.up = false;
        if (!s.failing_since || *q.failing_since() < *s.failing_since) s.failing_since = q.failing_since();
      }
      now.push_back({h->target.delivery.name, s});
    }
    std::lock_guard lock(stats_mutex);
    stats = std::move(now);
  }
};

Result<std::unique_ptr<WebhookSender>> WebhookSender::start(zmq::context_t& context, WebhookSenderOptions options) {
  auto impl = std::make_unique<Impl>(context, std::move(options));
  try {
    impl->setup();
  } catch (const std::exception& e) {
    return make_error(errc::unavailable, std::string("cannot start the webhook sender: ") + e.what());
  }
  Impl* raw = impl.get();
  raw->thread = std::thread([raw] {
    auto guard = asio::make_work_guard(raw->ioc);
    while (!raw->stopped.load()) {
      try {
        raw->ioc.run();
        return;
      } catch (const std::exception& e) {
        spdlog::error("webhooks: {}", e.what());
      }
    }
  });
  return std::unique_ptr<WebhookSender>(new WebhookSender(std::move(impl)));
}

WebhookSender::WebhookSender(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
WebhookSender::~WebhookSender() { stop(); }

void WebhookSender::stop() {
  if (!impl_ || impl_->stopped.exchange(true)) return;
  impl_->ioc.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

std::vector<WebhookStats> WebhookSender::stats() const {
  std::lock_guard lock(impl_->stats_mutex);
  return impl_->stats;
}

}  // namespace switchboard::actors
