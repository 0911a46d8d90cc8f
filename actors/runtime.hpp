// The actor runtime: one thread per actor, with its sockets, poll loop and timers.
#pragma once

#include <atomic>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <zmq.hpp>

#include "switchboard/actors/actor.hpp"
#include "switchboard/transport/curve.hpp"
#include "switchboard/transport/limits.hpp"

namespace switchboard::actors {

/// Where an actor's sockets live.
struct ActorSockets {
  std::string name;
  std::vector<std::string> mailbox;          ///< endpoints its ROUTER binds
  std::vector<std::string> publish;          ///< endpoints its PUB binds (none: no PUB)
  std::map<std::string, std::string> peers;  ///< actor name -> endpoint a DEALER connects to
  transport::Limits limits;                  ///< applied to sockets on tcp endpoints
  /// inproc endpoints of a second ROUTER for this node's other actors only: what
  /// arrives there is Inbound::Via::internal, which no outside peer can reach.
  std::vector<std::string> internal = {};
  /// Endpoints of a ROUTER for this actor's counterparts on other nodes: what arrives
  /// there is Inbound::Via::node, answered with Effects::reply_node.
  std::vector<std::string> node_mailbox = {};
  /// Peers on other nodes: peer name -> endpoint. A message goes out only on a live
  /// connection; one that cannot comes back to the actor, never queued for a peer
  /// that is gone: as Inbound::Via::undeliverable when there is no connection, as
  /// Inbound::Via::queue_full when the peer is connected but its queue is full.
  std::map<std::string, std::string> remote_peers = {};
  /// Routing id of this actor's DEALERs (default: its name). Actors on several nodes
  /// that call the same peer need different ones.
  std::string identity = {};
  /// SUB sockets: feed name -> endpoint, subscribed with Effects::subscribe; what they
  /// receive is Inbound::Via::feed.
  std::map<std::string, std::string> feeds = {};
  /// The PUB is an XPUB: each new subscription and each last unsubscription reaches
  /// the actor as Inbound::Via::subscription (to forward it upstream).
  bool xpub = false;
  /// CURVE on tcp endpoints (none: plain). What binds is a CURVE server with `own`,
  /// put to the context's ZAP handler under zap_domain(name, "clients" | "peers" |
  /// "publish") for the mailbox, the node mailbox and the PUB; what connects over tcp
  /// (peers, remote peers, feeds) is a client of server_keys[its peer or feed name].
  struct Curve {
    transport::CurveKeypair own;
    std::map<std::string, std::string> server_keys;
  };
  std::optional<Curve> curve = std::nullopt;
};

/// Counters a running actor keeps; read from any thread.
struct ActorCounters {
  std::atomic<std::uint64_t> messages{0};
  std::atomic<std::uint64_t> replies_dropped{0};  ///< peer gone or its queue full
  std::atomic<std::uint64_t> handler_failures{0};
  std::atomic<std::uint64_t> undeliverable{0};  ///< sends to remote peers that could not go out
  /// Messages that were waiting in the mailbox when the actor last read it (at most
  /// one read round's worth): how far behind the actor is.
  std::atomic<std::uint64_t> mailbox_backlog{0};
};

/// Runs one actor on its own thread. Sockets are created, bound and used only on that
/// thread; the constructor returns once every endpoint is bound (or throws
/// zmq::error_t naming the endpoint that failed).
class ActorThread {
 public:
  ActorThread(zmq::context_t& context, ActorSockets sockets, std::unique_ptr<Actor> actor);
  ~ActorThread();  ///< stop()
  ActorThread(const ActorThread&) = delete;
  ActorThread& operator=(const ActorThread&) = delete;

  /// The endpoints actually bound (tcp ports given as "*" resolved), in the order given.
  const std::vector<std::string>& mailbox_endpoints() const noexcept { return mailbox_bound_; }
  const std::vector<std::string>& publish_endpoints() const noexcept { return publish_bound_; }
  const ActorCounters& counters() const noexcept { return *counters_; }
  const std::string& name() const noexcept { return sockets_.name; }

  /// Asks the actor to stop (Actor::on_stop), waits until it is idle and its thread
  /// has ended. Idempotent. Call from the thread that built this object.
  void stop();

 private:
  void run(std::string control_endpoint);

  zmq::context_t& context_;
  ActorSockets sockets_;
  std::unique_ptr<Actor> actor_;
  std::unique_ptr<ActorCounters> counters_ = std::make_unique<ActorCounters>();
  std::vector<std::string> mailbox_bound_, publish_bound_;
  zmq::socket_t control_;
  std::promise<void>* run_started_ = nullptr;  ///< set until the thread has bound
  std::thread thread_;
  bool stopped_ = false;
};

}  // namespace switchboard::actors
