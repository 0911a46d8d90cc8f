// Services: actors that a backend runs in its own process, with the library, named
// in the topology file ([services.NAME], docs/TOPOLOGY.md).
//
// A service is an actor of the same shape as chat or presence: a handler from a
// message and the time to effects. Derive from Service and override what it needs:
//
//   check_publish    with `hook = "publish"` in its table, the node that owns a room
//                    asks the service about every publish before storing it: accept,
//                    or refuse with a reason (the publisher gets `refused`);
//   on_room_message  the messages of the rooms it follows (follow()), in order as
//                    published, from the node it is connected to;
//   on_reply         the replies to the requests it made (request(), post());
//   on_call          a client's `call` of this service by name, through any node
//                    (docs/PROTOCOL.md); answered with answer(), at once or later.
//
// ServiceHost runs it: it binds the service's endpoint (where every node's chat
// connects to ask it), connects it to one node as a client, and carries its effects
// out. examples/bot/ is a service: a moderation hook and an echo bot.
#pragma once

#include <memory>
#include <string>

#include <zmq.hpp>

#include "switchboard/actors/actor.hpp"
#include "switchboard/actors/runtime.hpp"
#include "switchboard/actors/security.hpp"
#include "switchboard/common/error.hpp"
#include "switchboard/router/topology.hpp"
#include "switchboard/transport/limits.hpp"
#include "switchboard/transport/messages.hpp"

namespace switchboard::actors {

class Service : public Actor {
 public:
  struct Verdict {
    bool accept = true;
    std::string reason;  ///< refusals: told to the publisher
    static Verdict refuse(std::string why) { return {false, std::move(why)}; }
  };

  /// A publish a node asks about before storing it (hook = "publish"). The default
  /// accepts everything. Called for every publish of every room, so keep it quick. A
  /// publish_batch is asked about whole: this is called for each of its items, and the
  /// first refused item refuses the frame (nothing of it is stored).
  virtual Verdict check_publish(const transport::Publish& publish, const Now& now);
  /// A message of a room this service follows.
  virtual void on_room_message(const transport::RoomMessage& message, const Now& now, Effects& out);
  /// The reply to request `id` (request(), post()); errors included (ErrorReply).
  virtual void on_reply(std::uint64_t id, const transport::ReplyBody& reply, const Now& now, Effects& out);
  /// Whom to answer a call: keep it to answer later.
  struct Caller {
    std::string node;
    std::uint64_t corr = 0, request_id = 0;
  };
  /// A client's call. The default answers `unknown_op`: this service takes no calls.
  /// The node answers the client `unavailable` if no answer comes within the
  /// service's `timeout_ms`.
  virtual void on_call(const transport::Call& call, const Caller& caller, const Now& now, Effects& out);

  void on_message(const Inbound& in, const Now& now, Effects& out) final;

 protected:
  /// Sends a client request (docs/PROTOCOL.md section 4) to the node; the reply comes
  /// to on_reply with the id returned. Like a client's, a request waits for the
  /// connection to the node.
  std::uint64_t request(Effects& out, transport::RequestBody body);
  /// Posts into a room as `user` (a member), with an idempotency key: a repeat of the
  /// same `client_msg_id` is stored once.
  std::uint64_t post(Effects& out, const std::string& room, const std::string& user, const std::string& body,
                     const std::string& client_msg_id);
  /// Follows a room from now on: its messages come to on_room_message.
  void follow(Effects& out, const std::string& room);
  /// Answers a call: a body for the client, or an error (its code and message reach
  /// the client as they are).
  void answer(Effects& out, const Caller& caller, const Result<std::string>& body);
  /// The service's name in the topology.
  const std::string& name() const noexcept { return name_; }

  transport::Limits limits_;

 private:
  friend class ServiceHost;
  std::uint64_t next_id_ = 1;
  std::string name_;
};

struct ServiceOptions {
  std::string name;
  std::string endpoint;  ///< where the nodes connect (the topology's `endpoint`)
  std::string node_client, node_publish;  ///< the node it uses as a client
  transport::Limits limits;
  /// CURVE (none: plain): the service's keys, the nodes admitted to its endpoint, and
  /// the public key of the node it uses as a client.
  std::optional<CurveSetup> curve = std::nullopt;
  std::string node_public = {};
};

/// The options of service `service` of a checked topology, connected to `node`, with
/// CURVE unless the topology turns it off (service_curve: key files made if missing).
/// Errors: bad_field (no such service or node in the topology), and service_curve's.
Result<ServiceOptions> service_options(const router::Topology& topology, const std::string& service,
                                       const std::string& node);

/// Runs a Service on its own thread, with its own ZeroMQ context.
class ServiceHost {
 public:
  /// Errors: unavailable (the endpoint cannot be bound; the message says why).
  static Result<std::unique_ptr<ServiceHost>> start(ServiceOptions options, std::unique_ptr<Service> service);
  ~ServiceHost();  ///< stop()
  void stop();

 private:
  ServiceHost() = default;
  zmq::context_t context_;
  std::unique_ptr<ZapHandler> zap_;
  std::unique_ptr<ActorThread> thread_;
};

}  // namespace switchboard::actors
