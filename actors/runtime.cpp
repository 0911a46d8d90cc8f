#include "switchboard/actors/runtime.hpp"

#include <pthread.h>

#include <future>
#include <queue>
#include <stdexcept>

#include <spdlog/spdlog.h>

#include "switchboard/transport/socket.hpp"

namespace switchboard::actors {
namespace {

// Messages read from one socket before the others get a turn.
constexpr int kBurst = 4096;
// A stopping actor that is still busy after this long is closed anyway; whatever it
// had in flight was never acknowledged, so nothing acknowledged is lost.
constexpr auto kStopGrace = std::chrono::seconds(30);

std::atomic<std::uint64_t> next_control_id{0};

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
  // "sb-chat", "sb-persistence": visible in top -H, perf and gdb (15 characters at most).
  pthread_setname_np(pthread_self(), ("sb-" + name).substr(0, 15).c_str());
  zmq::socket_t control(context_, zmq::socket_type::pair);
  control.connect(control_endpoint);

  zmq::socket_t mailbox(context_, zmq::socket_type::router);
  mailbox.set(zmq::sockopt::router_mandatory, 1);
  mailbox.set(zmq::sockopt::sndhwm, sockets_.limits.reply_hwm);
  if (faces_outside(sockets_.mailbox)) transport::configure_outside(mailbox, sockets_.limits);
  for (const auto& e : sockets_.mailbox) mailbox_bound_.push_back(transport::bind_resolved(mailbox, e));

  std::optional<zmq::socket_t> internal;
  if (!sockets_.internal.empty()) {
    internal.emplace(context_, zmq::socket_type::router);
    for (const auto& e : sockets_.internal) {
      if (e.rfind("inproc://", 0) != 0) throw std::invalid_argument("internal endpoint is not inproc: " + e);
      internal->bind(e);
    }
  }

  std::optional<zmq::socket_t> pub;
  if (!sockets_.publish.empty()) {
    pub.emplace(context_, zmq::socket_type::pub);
    if (faces_outside(sockets_.publish)) transport::configure_outside(*pub, sockets_.limits);
    pub->set(zmq::sockopt::sndhwm, sockets_.limits.pub_sndhwm);
    for (const auto& e : sockets_.publish) publish_bound_.push_back(transport::bind_resolved(*pub, e));
  }

  std::vector<std::string> peer_names;
  std::vector<zmq::socket_t> dealers;
  for (const auto& [peer, endpoint] : sockets_.peers) {
    zmq::socket_t dealer(context_, zmq::socket_type::dealer);
    dealer.set(zmq::sockopt::routing_id, name);
    dealer.set(zmq::sockopt::sndhwm, 0);  // bounded by the callers: one batch in flight
    dealer.set(zmq::sockopt::rcvhwm, 0);
    if (endpoint.rfind("inproc://", 0) != 0) transport::configure_outside(dealer, sockets_.limits);
    dealer.connect(endpoint);
    peer_names.push_back(peer);
    dealers.push_back(std::move(dealer));
  }

  actor_->on_start(mailbox_bound_, publish_bound_);
  // Bound: the constructor may return.
  run_started_->set_value();
  run_started_ = nullptr;

  using Timer = std::pair<SteadyClock::time_point, std::uint64_t>;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timers;
  Effects fx;
  bool stopping = false;
  SteadyClock::time_point stop_deadline{};

  auto carry_out = [&]() {
    for (auto& effect : fx.list()) {
      if (auto* r = std::get_if<Effects::Reply>(&effect)) {
        try {
          zmq::message_t to(r->to.data(), r->to.size());
          zmq::message_t payload(r->payload.data(), r->payload.size());
          if (!mailbox.send(to, zmq::send_flags::sndmore | zmq::send_flags::dontwait) ||
              !mailbox.send(payload, zmq::send_flags::dontwait))
            counters_->replies_dropped.fetch_add(1, std::memory_order_relaxed);
        } catch (const zmq::error_t& e) {  // EHOSTUNREACH: the client has gone
          counters_->replies_dropped.fetch_add(1, std::memory_order_relaxed);
        }
      } else if (auto* s = std::get_if<Effects::Send>(&effect)) {
        bool sent = false;
        for (std::size_t i = 0; i < peer_names.size(); ++i)
          if (peer_names[i] == s->actor) {
            dealers[i].send(zmq::buffer(s->payload), zmq::send_flags::none);
            sent = true;
          }
        if (!sent) spdlog::error("actor {}: no peer named '{}'", name, s->actor);
      } else if (auto* p = std::get_if<Effects::Publish>(&effect)) {
        if (pub) {
          pub->send(zmq::buffer(p->topic), zmq::send_flags::sndmore);
          pub->send(zmq::buffer(p->payload), zmq::send_flags::none);
        }
      } else if (auto* t = std::get_if<Effects::Timer>(&effect)) {
        timers.emplace(t->at, t->id);
      }
    }
    fx.clear();
  };

  auto handle = [&](const Inbound& in) {
    counters_->messages.fetch_add(1, std::memory_order_relaxed);
    try {
      actor_->on_message(in, Now::real(), fx);
    } catch (const std::exception& e) {
      counters_->handler_failures.fetch_add(1, std::memory_order_relaxed);
      spdlog::error("actor {}: handler failed: {}", name, e.what());
    }
    carry_out();
  };

  std::vector<zmq::message_t> parts;
  Inbound in;
  for (;;) {
    std::vector<zmq::pollitem_t> items;
    items.push_back({control.handle(), 0, ZMQ_POLLIN, 0});
    const std::size_t first_dealer = stopping ? 1 : 2;
    if (!stopping) items.push_back({mailbox.handle(), 0, ZMQ_POLLIN, 0});
    for (auto& d : dealers) items.push_back({d.handle(), 0, ZMQ_POLLIN, 0});
    const std::size_t internal_item = items.size();
    if (internal && !stopping) items.push_back({internal->handle(), 0, ZMQ_POLLIN, 0});

    long timeout_ms = -1;
    auto now = SteadyClock::now();
    if (!timers.empty())
      timeout_ms = std::max<long>(0, std::chrono::ceil<std::chrono::milliseconds>(timers.top().first - now).count());
    if (stopping) timeout_ms = timeout_ms < 0 ? 100 : std::min(timeout_ms, 100L);
    zmq::poll(items.data(), items.size(), std::chrono::milliseconds(timeout_ms));

    bool read_any = false;
    if (items[0].revents & ZMQ_POLLIN) {
      zmq::message_t cmd;
      (void)control.recv(cmd, zmq::recv_flags::none);
      if (!stopping) {
        stopping = true;
        stop_deadline = SteadyClock::now() + kStopGrace;
        actor_->on_stop(Now::real(), fx);
        carry_out();
      }
    }
    // A ROUTER's messages are [routing id][payload frames...].
    auto read_router = [&](zmq::socket_t& router, Inbound::Via via) {
      for (int n = 0; n < kBurst && transport::recv_multipart_nowait(router, parts); ++n) {
        in.via = via;
        in.sender = transport::view(parts[0]);
        in.frames.clear();
        for (std::size_t i = 1; i < parts.size(); ++i) in.frames.push_back(transport::view(parts[i]));
        handle(in);
        read_any = true;
      }
    };
    if (!stopping && (items[1].revents & ZMQ_POLLIN)) read_router(mailbox, Inbound::Via::mailbox);
    for (std::size_t d = 0; d < dealers.size(); ++d) {
      if (!(items[first_dealer + d].revents & ZMQ_POLLIN)) continue;
      for (int n = 0; n < kBurst && transport::recv_multipart_nowait(dealers[d], parts); ++n) {
        in.via = Inbound::Via::peer;
        in.sender = peer_names[d];
        in.frames.clear();
        for (auto& p : parts) in.frames.push_back(transport::view(p));
        handle(in);
        read_any = true;
      }
    }
    if (internal_item < items.size() && (items[internal_item].revents & ZMQ_POLLIN))
      read_router(*internal, Inbound::Via::internal);
    now = SteadyClock::now();
    while (!timers.empty() && timers.top().first <= now) {
      auto id = timers.top().second;
      timers.pop();
      try {
        actor_->on_timer(id, Now::real(), fx);
      } catch (const std::exception& e) {
        counters_->handler_failures.fetch_add(1, std::memory_order_relaxed);
        spdlog::error("actor {}: timer handler failed: {}", name, e.what());
      }
      carry_out();
      read_any = true;
    }
    if (read_any) {
      try {
        actor_->on_drained(Now::real(), fx);
      } catch (const std::exception& e) {
        counters_->handler_failures.fetch_add(1, std::memory_order_relaxed);
        spdlog::error("actor {}: drain handler failed: {}", name, e.what());
      }
      carry_out();
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
