// An actor is a named state machine: a message and the time in, effects out.
// The runtime (actors/runtime.hpp) owns the sockets, the thread and the clock and
// carries the effects out; tests drive an actor directly with a simulated clock.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace switchboard::actors {

using SteadyClock = std::chrono::steady_clock;

/// The time as an actor sees it: a monotonic clock for timers and a wall clock (ms
/// since the Unix epoch) for timestamps that leave the node.
struct Now {
  SteadyClock::time_point steady{};
  std::uint64_t wall_ms = 0;

  static Now real();
};

/// A message that reached the actor.
struct Inbound {
  enum class Via {
    mailbox,  ///< a request on the actor's ROUTER; `sender` is the routing id to reply to
    peer,     ///< a reply from an actor this one called; `sender` is that actor's name
    internal, ///< on the internal mailbox (inproc only: other actors of this node)
    node,     ///< on the node mailbox: this actor's counterpart on another node
    /// a send to a remote peer that could not go out: no connection; `sender` is the peer.
    /// With no frames: the connection to that remote peer dropped.
    undeliverable,
    queue_full,     ///< a send to a remote peer that could not go out: it is connected, but its queue is full
    feed,     ///< a message on a subscribed feed: frames are topic, payload; `sender` is the feed
    subscription,   ///< XPUB only: frames[0] is a (un)subscription, 1 or 0 then the topic
  };
  Via via = Via::mailbox;
  std::string_view sender;
  std::vector<std::string_view> frames;  ///< payload frames (valid during the call only)
  /// mailbox: whose CURVE key the connection has, as ZAP named it (its User-Id: "grant
  /// NAME", "client", ...); empty for inproc and plain connections.
  std::string_view client = {};
};

/// What an actor asks the runtime to do, carried out in the order given.
class Effects {
 public:
  struct Reply {  ///< on the mailbox ROUTER (or the node mailbox)
    std::string to;
    std::string payload;
    bool node = false;
  };
  struct Send { std::string actor; std::string payload; };          ///< to a named peer actor
  struct Publish { std::string topic; std::string payload; };       ///< on the actor's PUB
  struct Timer { std::uint64_t id; SteadyClock::time_point at; };   ///< on_timer(id) at `at`
  struct Subscribe { std::string feed; std::string topic; bool on = true; };  ///< on a feed's SUB
  using Effect = std::variant<Reply, Send, Publish, Timer, Subscribe>;

  void reply(std::string to, std::string payload) {
    list_.emplace_back(Reply{std::move(to), std::move(payload), false});
  }
  /// A reply to a message that came Via::node.
  void reply_node(std::string to, std::string payload) {
    list_.emplace_back(Reply{std::move(to), std::move(payload), true});
  }
  void subscribe(std::string feed, std::string topic, bool on = true) {
    list_.emplace_back(Subscribe{std::move(feed), std::move(topic), on});
  }
  void send(std::string actor, std::string payload) { list_.emplace_back(Send{std::move(actor), std::move(payload)}); }
  void publish(std::string topic, std::string payload) {
    list_.emplace_back(Publish{std::move(topic), std::move(payload)});
  }
  void start_timer(std::uint64_t id, SteadyClock::time_point at) { list_.emplace_back(Timer{id, at}); }

  void add(Effect effect) { list_.push_back(std::move(effect)); }

  const std::vector<Effect>& list() const noexcept { return list_; }
  /// The same, for the runtime to move payloads out of as it carries them out.
  std::vector<Effect>& list() noexcept { return list_; }
  bool empty() const noexcept { return list_.empty(); }
  void clear() noexcept { list_.clear(); }

 private:
  std::vector<Effect> list_;
};

class Actor {
 public:
  virtual ~Actor() = default;

  /// The runtime has bound the actor's sockets: the endpoints actually bound.
  virtual void on_start(const std::vector<std::string>& /*mailbox*/,
                        const std::vector<std::string>& /*publish*/, const Now&, Effects&) {}
  /// One message in. Must not throw for bad input: a bad frame gets an error reply.
  virtual void on_message(const Inbound& in, const Now& now, Effects& out) = 0;
  /// A mailbox message the actor takes before the others the runtime read with it
  /// (a read that need not wait behind writes). The rest keep their order.
  virtual bool ahead(const Inbound& /*in*/) const { return false; }
  /// Called when the runtime has handed over every message that was waiting: the
  /// point for group work (a group commit, a batch to send).
  virtual void on_drained(const Now&, Effects&) {}
  /// A timer started with Effects::start_timer fired.
  virtual void on_timer(std::uint64_t /*id*/, const Now&, Effects&) {}
  /// Stop was asked: the mailbox is no longer read. Finish what is in flight.
  virtual void on_stop(const Now&, Effects&) {}
  /// After on_stop: true once the actor has nothing in flight and may be closed.
  virtual bool idle() const { return true; }
};

}  // namespace switchboard::actors
