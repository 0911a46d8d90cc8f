#include "switchboard/actors/runtime.hpp"

#include <pthread.h>

#include <cstdint>
#include <cstring>
#include <future>
#include <optional>
#include <queue>
#include <stdexcept>

#include <spdlog/spdlog.h>

#include "switchboard/actors/zap.hpp"
#include "switchboard/transport/handshake.hpp"
#include "switchboard/transport/socket.hpp"

namespace switchboard::actors {
namespace {

// Messages read from one socket before the others get a turn.
constexpr int kBurst = 4096;
/// Mailbox messages held back at once while those taken ahead are handled.
constexpr std::size_t kHeld = 256;
// A stopping actor that is still busy after this long is closed anyway; whatever it
// had in flight was never acknowledged, so nothing acknowledged is lost.
constexpr auto kStopGrace = std::chrono::seconds(30);

std::atomic<std::uint64_t> next_control_id{0};

/// Payloads at least this large are handed to ZeroMQ without a copy (a history page, a
/// backup's chunk): the string moves into the message, which frees it once sent (on
/// inproc, once the receiving actor is done with it). Smaller ones are copied: cheaper
/// than a holder of their own.
constexpr std::size_t kZeroCopyBytes = 64 * 1024;

zmq::message_t message_of(std::string& payload) {
  if (payload.size() < kZeroCopyBytes) return zmq::message_t(payload.data(), payload.size());
  auto* held = new std::string(std::move(payload));
  return zmq::message_t(held->data(), held->size(), [](void*, void* hint) { delete static_cast<std::string*>(hint); },
                        held);
}

bool faces_outside(const std::vector<std::string>& endpoints) {
  for (const auto& e : endpoints)
    if (e.rfind("inproc://", 0) != 0) return true;
  return false;
}

}  // namespace

Now Now::real() {
  using namespace std::chrono;
  return Now{SteadyClock::now(),
             static_cast<std::uint64_t>(duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count())};
}

ActorThread::ActorThread(zmq::context_t& context, ActorSockets sockets, std::unique_ptr<Actor> actor)
    : context_(context), sockets_(std::move(sockets)), actor_(std::move(actor)), control_(context, zmq::socket_type::pair) {
  std::string control_endpoint = "inproc://switchboard-control-" + sockets_.name + "-" +
                                 std::to_string(next_control_id.fetch_add(1));
  control_.bind(control_endpoint);
  std::promise<void> ready;
  auto bound = ready.get_future();
  thread_ = std::thread([this, control_endpoint, ready = std::move(ready)]() mutable {
    try {
      run_started_ = &ready;
      run(control_endpoint);
    } catch (...) {
      if (run_started_ != nullptr) ready.set_exception(std::current_exception());
      else spdlog::critical("actor {}: runtime failed", sockets_.name);
    }
  });
  try {
    bound.get();
  } catch (...) {
    thread_.join();
    throw;
  }
}

ActorThread::~ActorThread() { stop(); }

void ActorThread::stop() {
  if (stopped_) return;
  stopped_ = true;
  if (thread_.joinable()) {
    control_.send(zmq::str_buffer("stop"), zmq::send_flags::none);
    thread_.join();
  }
  control_.close();
}

void ActorThread::run(std::string control_endpoint) {
  const std::string& name = sockets_.name;
  const std::string& identity = sockets_.identity.empty() ? name : sockets_.identity;
  // "sb-chat", "sb-persistence": visible in top -H, perf and gdb (15 characters at most).
  pthread_setname_np(pthread_self(), ("sb-" + name).substr(0, 15).c_str());
  zmq::socket_t control(context_, zmq::socket_type::pair);
  control.connect(control_endpoint);

  // CURVE for what faces the outside; inproc connections have no handshake. A client
  // that fails the handshake before ZAP is asked (no CURVE at all, or not ZMTP) is seen
  // only by a monitor on the server socket: it is logged from there.
  struct ServerMonitor {
    std::string kind;
    zmq::socket_t socket;
  };
  std::vector<ServerMonitor> server_monitors;
  LogBudget handshake_log{20, std::chrono::seconds(1)};
  auto serve = [&](zmq::socket_t& socket, std::string_view kind) {
    if (!sockets_.curve) return;
    transport::curve_server(socket, sockets_.curve->own, zap_domain(name, kind));
    const std::string watch = "inproc://switchboard-server-monitor-" +
                              std::to_string(reinterpret_cast<std::uintptr_t>(this)) + "-" + name + "-" +
                              std::string(kind);
    if (zmq_socket_monitor(socket.handle(), watch.c_str(),
                           ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) != 0)
      throw zmq::error_t();
    zmq::socket_t monitor(context_, zmq::socket_type::pair);
    monitor.connect(watch);
    server_monitors.push_back({std::string(kind), std::move(monitor)});
  };
  auto connect_to = [&](zmq::socket_t& socket, const std::string& peer, const std::string& endpoint) {
    if (sockets_.curve && endpoint.rfind("inproc://", 0) != 0) {
      auto key = sockets_.curve->server_keys.find(peer);
      if (key == sockets_.curve->server_keys.end())
        throw std::invalid_argument("actor " + name + ": no CURVE key for " + peer + " at " + endpoint);
      transport::curve_client(socket, {sockets_.curve->own, key->second});
    }
    socket.connect(endpoint);
  };

  zmq::socket_t mailbox(context_, zmq::socket_type::router);
  mailbox.set(zmq::sockopt::router_mandatory, 1);
  mailbox.set(zmq::sockopt::sndhwm, sockets_.limits.reply_hwm);
  if (faces_outside(sockets_.mailbox)) {
    transport::configure_outside(mailbox, sockets_.limits);
    serve(mailbox, "clients");
  }
  for (const auto& e : sockets_.mailbox) mailbox_bound_.push_back(transport::bind_resolved(mailbox, e));

  std::optional<zmq::socket_t> internal;
  if (!sockets_.internal.empty()) {
    internal.emplace(context_, zmq::socket_type::router);
    for (const auto& e : sockets_.internal) {
      if (e.rfind("inproc://", 0) != 0) throw std::invalid_argument("internal endpoint is not inproc: " + e);
      internal->bind(e);
    }
  }

  std::optional<zmq::socket_t> node_mailbox;
  if (!sockets_.node_mailbox.empty()) {
    node_mailbox.emplace(context_, zmq::socket_type::router);
    node_mailbox->set(zmq::sockopt::router_mandatory, 1);
    // A node that restarts reconnects under the same routing id before this side has
    // noticed that the old connection is dead: the new connection takes over.
    node_mailbox->set(zmq::sockopt::router_handover, 1);
    node_mailbox->set(zmq::sockopt::sndhwm, sockets_.limits.reply_hwm);
    if (faces_outside(sockets_.node_mailbox)) {
      transport::configure_outside(*node_mailbox, sockets_.limits);
      // Other nodes only (their keys): a shard's log entries are a whole batch's records.
      node_mailbox->set(zmq::sockopt::maxmsgsize,
                        static_cast<int64_t>(std::max<std::size_t>(64u << 20, sockets_.limits.max_socket_message)));
      serve(*node_mailbox, "peers");
    }
    for (const auto& e : sockets_.node_mailbox) node_mailbox->bind(e);
  }

  std::optional<zmq::socket_t> pub;
  if (!sockets_.publish.empty()) {
    pub.emplace(context_, sockets_.xpub ? zmq::socket_type::xpub : zmq::socket_type::pub);
    if (faces_outside(sockets_.publish)) {
      transport::configure_outside(*pub, sockets_.limits);
      serve(*pub, "publish");
    }
    pub->set(zmq::sockopt::sndhwm, sockets_.limits.pub_sndhwm);
    for (const auto& e : sockets_.publish) publish_bound_.push_back(transport::bind_resolved(*pub, e));
  }

  struct Dealer {
    std::string peer;
    zmq::socket_t socket;
    bool remote;
    /// Remote peers: the DEALER's connection events (ZMQ socket monitor), to tell a
    /// peer that is gone from one that is connected but not keeping up.
    std::optional<zmq::socket_t> monitor = std::nullopt;
    bool connected = false;
    bool failure_logged = false;  ///< a failed handshake was logged; again only after a success
  };
  std::vector<Dealer> dealers;
  for (const auto& [peer, endpoint] : sockets_.peers) {
    zmq::socket_t dealer(context_, zmq::socket_type::dealer);
    // This node's own actors know each other by actor name: the node's name (identity)
    // is for other nodes, and two actors of one node sending to a third under it would
    // collide there (its ROUTER drops the second connection of a routing id).
    dealer.set(zmq::sockopt::routing_id, endpoint.rfind("inproc://", 0) == 0 ? name : identity);
    dealer.set(zmq::sockopt::sndhwm, 0);  // bounded by the callers: one batch in flight
    dealer.set(zmq::sockopt::rcvhwm, 0);
    if (endpoint.rfind("inproc://", 0) != 0) transport::configure_outside(dealer, sockets_.limits);
    connect_to(dealer, peer, endpoint);
    dealers.push_back({peer, std::move(dealer), false});
  }
  for (const auto& [peer, endpoint] : sockets_.remote_peers) {
    zmq::socket_t dealer(context_, zmq::socket_type::dealer);
    dealer.set(zmq::sockopt::routing_id, identity);
    transport::configure_outside(dealer, sockets_.limits);
    transport::configure_peer_link(dealer, sockets_.limits);
    // Watched from before it connects, so that no event is missed.
    const std::string watch = "inproc://switchboard-monitor-" + std::to_string(reinterpret_cast<std::uintptr_t>(this)) +
                              "-" + name + "-" + peer;
    constexpr int kHandshakeFailed =
        ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;
    if (zmq_socket_monitor(dealer.handle(), watch.c_str(),
                           ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED | kHandshakeFailed) != 0)
      throw zmq::error_t();
    zmq::socket_t monitor(context_, zmq::socket_type::pair);
    monitor.connect(watch);
    connect_to(dealer, peer, endpoint);
    dealers.push_back({peer, std::move(dealer), true, std::move(monitor)});
  }

  struct Feed {
    std::string name;
    zmq::socket_t socket;
  };
  std::vector<Feed> feeds;
  for (const auto& [feed, endpoint] : sockets_.feeds) {
    zmq::socket_t sub(context_, zmq::socket_type::sub);
    if (endpoint.rfind("inproc://", 0) != 0) transport::configure_outside(sub, sockets_.limits);
    sub.set(zmq::sockopt::rcvhwm, sockets_.limits.pub_sndhwm);
    connect_to(sub, feed, endpoint);
    feeds.push_back({feed, std::move(sub)});
  }

  using Timer = std::pair<SteadyClock::time_point, std::uint64_t>;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timers;
  Effects fx;
  bool stopping = false;
  SteadyClock::time_point stop_deadline{};
  struct Undelivered {
    std::string peer, payload;
    bool queue_full;  ///< the peer is connected: its queue is full
  };
  std::vector<Undelivered> undelivered;

  auto send_reply = [&](zmq::socket_t& router, Effects::Reply& r) {
    try {
      zmq::message_t to(r.to.data(), r.to.size());
      zmq::message_t payload = message_of(r.payload);
      if (!router.send(to, zmq::send_flags::sndmore | zmq::send_flags::dontwait) ||
          !router.send(payload, zmq::send_flags::dontwait))
        counters_->replies_dropped.fetch_add(1, std::memory_order_relaxed);
    } catch (const zmq::error_t&) {  // EHOSTUNREACH: the client has gone
      counters_->replies_dropped.fetch_add(1, std::memory_order_relaxed);
    }
  };

  auto carry_out = [&]() {
    for (auto& effect : fx.list()) {
      if (auto* r = std::get_if<Effects::Reply>(&effect)) {
        if (!r->node) send_reply(mailbox, *r);
        else if (node_mailbox) send_reply(*node_mailbox, *r);
        else spdlog::error("actor {}: a node reply, but no node mailbox", name);
      } else if (auto* s = std::get_if<Effects::Send>(&effect)) {
        bool found = false;
        for (auto& d : dealers) {
          if (d.peer != s->actor) continue;
          found = true;
          if (!d.remote) {
            d.socket.send(zmq::buffer(s->payload), zmq::send_flags::none);
          } else if (!d.socket.send(zmq::buffer(s->payload), zmq::send_flags::dontwait)) {
            counters_->undeliverable.fetch_add(1, std::memory_order_relaxed);
            undelivered.push_back({s->actor, s->payload, d.connected});
          }
        }
        if (!found) spdlog::error("actor {}: no peer named '{}'", name, s->actor);
      } else if (auto* p = std::get_if<Effects::Publish>(&effect)) {
        if (pub) {
          pub->send(zmq::buffer(p->topic), zmq::send_flags::sndmore);
          pub->send(zmq::buffer(p->payload), zmq::send_flags::none);
        }
      } else if (auto* t = std::get_if<Effects::Timer>(&effect)) {
        timers.emplace(t->at, t->id);
      } else if (auto* sub = std::get_if<Effects::Subscribe>(&effect)) {
        bool found = false;
        for (auto& f : feeds)
          if (f.name == sub->feed) {
            found = true;
            if (sub->on) f.socket.set(zmq::sockopt::subscribe, sub->topic);
            else f.socket.set(zmq::sockopt::unsubscribe, sub->topic);
          }
        if (!found) spdlog::error("actor {}: no feed named '{}'", name, sub->feed);
      }
    }
    fx.clear();
  };

  // Runs one of the actor's handlers: a failure is counted and logged, never let out,
  // and its effects are carried out.
  auto guarded = [&](const char* what, auto&& handler) {
    try {
      handler();
    } catch (const std::exception& e) {
      counters_->handler_failures.fetch_add(1, std::memory_order_relaxed);
      spdlog::error("actor {}: {} failed: {}", name, what, e.what());
    }
    carry_out();
  };
  // The same, then what could not go out to a remote peer goes back to the actor,
  // whichever handler sent it.
  auto call = [&](const char* what, auto&& handler) {
    guarded(what, handler);
    while (!undelivered.empty()) {
      auto [peer, payload, full] = std::move(undelivered.front());
      undelivered.erase(undelivered.begin());
      Inbound back{full ? Inbound::Via::queue_full : Inbound::Via::undeliverable, peer, {payload}};
      guarded("handler", [&] { actor_->on_message(back, Now::real(), fx); });
    }
  };

  auto handle = [&](const Inbound& in) {
    counters_->messages.fetch_add(1, std::memory_order_relaxed);
    call("handler", [&] { actor_->on_message(in, Now::real(), fx); });
  };

  actor_->on_start(mailbox_bound_, publish_bound_, Now::real(), fx);
  carry_out();
  // Bound and started: the constructor may return.
  run_started_->set_value();
  run_started_ = nullptr;

  // The poll set: what each item is, so that reading it is one switch.
  enum class Kind { control, mailbox, dealer, internal, node, feed, subscriptions, monitor, server_monitor };
  struct Item {
    Kind kind;
    std::size_t index;
  };
  std::vector<zmq::message_t> parts;
  std::vector<std::vector<zmq::message_t>> waiting;  ///< a mailbox burst's messages not taken ahead
  Inbound in;
  std::vector<zmq::pollitem_t> items;
  std::vector<Item> what;
  for (;;) {
    items.clear();
    what.clear();
    auto add = [&](zmq::socket_t& s, Kind kind, std::size_t index) {
      items.push_back({s.handle(), 0, ZMQ_POLLIN, 0});
      what.push_back({kind, index});
    };
    add(control, Kind::control, 0);
    if (!stopping) add(mailbox, Kind::mailbox, 0);
    for (std::size_t d = 0; d < dealers.size(); ++d) {
      add(dealers[d].socket, Kind::dealer, d);
      if (dealers[d].monitor) add(*dealers[d].monitor, Kind::monitor, d);
    }
    if (internal && !stopping) add(*internal, Kind::internal, 0);
    if (node_mailbox && !stopping) add(*node_mailbox, Kind::node, 0);
    for (std::size_t f = 0; f < feeds.size(); ++f) add(feeds[f].socket, Kind::feed, f);
    if (pub && sockets_.xpub) add(*pub, Kind::subscriptions, 0);
    for (std::size_t m = 0; m < server_monitors.size(); ++m) add(server_monitors[m].socket, Kind::server_monitor, m);

    long timeout_ms = -1;
    auto now = SteadyClock::now();
    if (!timers.empty())
      timeout_ms = std::max<long>(0, std::chrono::ceil<std::chrono::milliseconds>(timers.top().first - now).count());
    if (stopping) timeout_ms = timeout_ms < 0 ? 100 : std::min(timeout_ms, 100L);
    transport::poll(items.data(), items.size(), std::chrono::milliseconds(timeout_ms));

    bool read_any = false;
    // A ROUTER's messages are [routing id][payload frames...].
    auto read_router = [&](zmq::socket_t& router, Inbound::Via via) {
      auto inbound = [&](std::vector<zmq::message_t>& message) {
        in.via = via;
        in.sender = transport::view(message[0]);
        in.frames.clear();
        for (std::size_t i = 1; i < message.size(); ++i) in.frames.push_back(transport::view(message[i]));
        // ZAP's User-Id for the connection; none on inproc and plain connections.
        const char* user_id = message.size() > 1 ? zmq_msg_gets(message[1].handle(), "User-Id") : nullptr;
        in.client = user_id ? std::string_view(user_id) : std::string_view();
      };
      // The mailbox's messages are read first and those the actor takes ahead handled
      // at once; the others after them, in the order they came.
      // At most kHeld are held at a time, so a burst of large frames is not all kept.
      const bool sort = via == Inbound::Via::mailbox;
      std::size_t held = 0;
      auto handle_held = [&] {
        for (std::size_t i = 0; i < held; ++i) {
          inbound(waiting[i]);
          handle(in);
          waiting[i].clear();
        }
        held = 0;
      };
      int n = 0;
      for (; n < kBurst && transport::recv_multipart_nowait(router, parts); ++n) {
        read_any = true;
        inbound(parts);
        if (!sort || actor_->ahead(in)) {
          handle(in);
          continue;
        }
        if (waiting.size() == held) waiting.emplace_back();
        std::swap(waiting[held++], parts);
        if (held == kHeld) handle_held();
      }
      handle_held();
      if (sort) counters_->mailbox_backlog.store(n, std::memory_order_relaxed);
    };
    // Other sockets' messages are the payload frames alone, from a named source.
    auto read_all = [&](zmq::socket_t& socket, Inbound::Via via, std::string_view sender) {
      for (int n = 0; n < kBurst && transport::recv_multipart_nowait(socket, parts); ++n) {
        in.via = via;
        in.sender = sender;
        in.frames.clear();
        for (auto& p : parts) in.frames.push_back(transport::view(p));
        handle(in);
        read_any = true;
      }
    };
    for (std::size_t i = 0; i < items.size(); ++i) {
      if (!(items[i].revents & ZMQ_POLLIN)) continue;
      switch (what[i].kind) {
        case Kind::control: {
          zmq::message_t cmd;
          (void)control.recv(cmd, zmq::recv_flags::none);
          if (!stopping) {
            stopping = true;
            stop_deadline = SteadyClock::now() + kStopGrace;
            actor_->on_stop(Now::real(), fx);
            carry_out();
          }
          break;
        }
        case Kind::mailbox:
          if (!stopping) read_router(mailbox, Inbound::Via::mailbox);
          break;
        case Kind::dealer:
          read_all(dealers[what[i].index].socket, Inbound::Via::peer, dealers[what[i].index].peer);
          break;
        case Kind::internal:
          if (!stopping) read_router(*internal, Inbound::Via::internal);
          break;
        case Kind::node:
          if (!stopping) read_router(*node_mailbox, Inbound::Via::node);
          break;
        case Kind::feed:
          read_all(feeds[what[i].index].socket, Inbound::Via::feed, feeds[what[i].index].name);
          break;
        case Kind::subscriptions:
          read_all(*pub, Inbound::Via::subscription, {});
          break;
        case Kind::server_monitor: {
          // Each event: [2-byte event, 4-byte value][endpoint]. ZAP logs the refused keys;
          // these are the connections that never got as far as offering one.
          ServerMonitor& m = server_monitors[what[i].index];
          while (transport::recv_multipart_nowait(m.socket, parts)) {
            if (parts.empty() || parts[0].size() < 6 || !handshake_log.take(SteadyClock::now())) continue;
            std::uint16_t event = 0;
            std::uint32_t value = 0;
            std::memcpy(&event, parts[0].data(), sizeof event);
            std::memcpy(&value, static_cast<const char*>(parts[0].data()) + 2, sizeof value);
            // What was seen: NO_DETAIL carries an errno, PROTOCOL a ZMTP protocol error code.
            const std::string why = transport::handshake_failure(event, value, transport::HandshakeSide::server, true);
            const std::uint64_t suppressed = handshake_log.take_suppressed();
            spdlog::warn("actor {}: a connection to {} ({}) failed its handshake before offering a CURVE key: {}{}",
                         name, parts.size() > 1 ? transport::view(parts[1]) : std::string_view("?"),
                         zap_domain(name, m.kind), why,
                         suppressed ? " (" + std::to_string(suppressed) + " more not logged)" : std::string());
          }
          break;
        }
        case Kind::monitor: {
          // Each event: [2-byte event, 4-byte value][endpoint].
          Dealer& d = dealers[what[i].index];
          while (transport::recv_multipart_nowait(*d.monitor, parts)) {
            if (parts.empty() || parts[0].size() < 2) continue;
            std::uint16_t event = 0;
            std::memcpy(&event, parts[0].data(), sizeof event);
            std::uint32_t value = 0;
            if (parts[0].size() >= 6) std::memcpy(&value, static_cast<const char*>(parts[0].data()) + 2, sizeof value);
            if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) d.connected = true, d.failure_logged = false;
            if (event == ZMQ_EVENT_DISCONNECTED && d.connected) {
              // The connection dropped (the peer's process died, or it closed it): the
              // actor hears at once, not after its heartbeats go unanswered.
              d.connected = false;
              Inbound gone{Inbound::Via::undeliverable, d.peer, {}};
              call("handler", [&] { actor_->on_message(gone, Now::real(), fx); });
            }
            if ((event & (ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                          ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)) != 0 &&
                !d.failure_logged) {
              // Once per failing spell, not per reconnection attempt.
              d.failure_logged = true;
              spdlog::error("actor {}: the handshake with {} at {} failed: {}", name, d.peer,
                            parts.size() > 1 ? transport::view(parts[1]) : std::string_view("?"),
                            transport::handshake_failure(event, value, transport::HandshakeSide::client,
                                                         sockets_.curve.has_value()));
            }
          }
          break;
        }
      }
    }
    now = SteadyClock::now();
    while (!timers.empty() && timers.top().first <= now) {
      auto id = timers.top().second;
      timers.pop();
      call("timer handler", [&] { actor_->on_timer(id, Now::real(), fx); });
      read_any = true;
    }
    if (read_any) {
      call("drain handler", [&] { actor_->on_drained(Now::real(), fx); });
    }
    if (stopping) {
      if (actor_->idle()) break;
      if (SteadyClock::now() >= stop_deadline) {
        spdlog::warn("actor {}: still busy {}s after stop; closing", name, kStopGrace.count());
        break;
      }
    }
  }
}

}  // namespace switchboard::actors
