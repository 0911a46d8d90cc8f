#include "switchboard/actors/service.hpp"

#include <random>

#include <spdlog/spdlog.h>

#include "switchboard/router/peer_frames.hpp"
#include "switchboard/transport/codec.hpp"

namespace switchboard::actors {
namespace {

constexpr const char* kNode = "node";    // the DEALER to the node's client endpoint
constexpr const char* kRooms = "rooms";  // the SUB on the node's publish endpoint

}  // namespace

Service::Verdict Service::check_publish(const transport::Publish&, const Now&) { return {}; }
void Service::on_room_message(const transport::RoomMessage&, const Now&, Effects&) {}
void Service::on_reply(std::uint64_t, const transport::ReplyBody&, const Now&, Effects&) {}
void Service::on_call(const transport::Call&, const Caller& caller, const Now&, Effects& out) {
  answer(out, caller, make_error(errc::unknown_op, "service '" + name_ + "' takes no calls"));
}

void Service::answer(Effects& out, const Caller& caller, const Result<std::string>& body) {
  transport::Reply reply{caller.request_id, {}};
  if (body) reply.body = transport::CallOk{name_, *body};
  else reply.body = transport::ErrorReply{body.error().code, body.error().message};
  out.reply_node(caller.node, router::encode_peer(router::PeerKind::reply, caller.corr, transport::encode_reply(reply)));
}

void Service::on_message(const Inbound& in, const Now& now, Effects& out) {
  switch (in.via) {
    case Inbound::Via::node: {  // a node's chat asks: a publish to check, or a ping
      auto peer = in.frames.size() == 1 ? router::decode_peer(in.frames[0]) : std::nullopt;
      if (!peer) {
        spdlog::warn("service: unreadable frame from node '{}'", in.sender);
        return;
      }
      if (peer->kind == router::PeerKind::ping) {
        out.reply_node(std::string(in.sender), router::encode_peer(router::PeerKind::pong, peer->corr));
        return;
      }
      if (peer->kind != router::PeerKind::forward) return;
      auto request = transport::decode_request(peer->body, limits_);
      if (const auto* call = request.body ? std::get_if<transport::Call>(&*request.body) : nullptr) {
        on_call(*call, Caller{std::string(in.sender), peer->corr, request.id}, now, out);
        return;
      }
      const auto* publish = request.body ? std::get_if<transport::Publish>(&*request.body) : nullptr;
      const auto* batch = request.body ? std::get_if<transport::PublishBatch>(&*request.body) : nullptr;
      Verdict verdict = publish ? check_publish(*publish, now)
                                : Verdict::refuse("the publish hook was sent something that is not a publish");
      // A publish_batch: every item is checked as a publish; the first refused one
      // refuses the whole frame, naming it.
      for (std::size_t i = 0; batch && i < batch->items.size(); ++i) {
        const auto& item = batch->items[i];
        verdict = check_publish(transport::Publish{batch->room, batch->user, item.client_msg_id, item.body}, now);
        if (!verdict.accept) {
          verdict.reason = "item " + std::to_string(i) + " (cmid '" + item.client_msg_id + "'): " + verdict.reason;
          break;
        }
      }
      out.reply_node(std::string(in.sender),
                     verdict.accept ? router::encode_peer(router::PeerKind::accept, peer->corr)
                                    : router::encode_peer(router::PeerKind::refuse, peer->corr, verdict.reason));
      return;
    }
    case Inbound::Via::feed: {
      if (in.frames.size() != 2) return;
      auto message = transport::decode_message(in.frames[1], limits_);
      if (message) on_room_message(*message, now, out);
      else spdlog::warn("service: unreadable room message: {}", message.error().message);
      return;
    }
    case Inbound::Via::peer: {
      if (in.frames.size() != 1) return;
      auto reply = transport::decode_reply(in.frames[0], limits_);
      if (reply) on_reply(reply->id, reply->body, now, out);
      else spdlog::warn("service: unreadable reply: {}", reply.error().message);
      return;
    }
    default: return;
  }
}

std::uint64_t Service::request(Effects& out, transport::RequestBody body) {
  const std::uint64_t id = next_id_++;
  out.send(kNode, transport::encode_request(transport::Request{id, std::move(body)}));
  return id;
}

std::uint64_t Service::post(Effects& out, const std::string& room, const std::string& user, const std::string& body,
                            const std::string& client_msg_id) {
  return request(out, transport::Publish{room, user, client_msg_id, body});
}

void Service::follow(Effects& out, const std::string& room) { out.subscribe(kRooms, transport::room_topic(room)); }

Result<ServiceOptions> service_options(const router::Topology& topology, const std::string& service,
                                       const std::string& node) {
  auto s = topology.services.find(service);
  if (s == topology.services.end()) return make_error(errc::bad_field, "the topology has no service '" + service + "'");
  auto n = topology.nodes.find(node);
  if (n == topology.nodes.end()) return make_error(errc::bad_field, "the topology has no node '" + node + "'");
  ServiceOptions options{service, s->second.endpoint, n->second.client, n->second.publish, topology.limits};
  if (topology.security.curve) {
    auto curve = service_curve(topology, service);
    if (!curve) return curve.error();
    options.node_public = curve->node_keys.at(node);
    options.curve = std::move(*curve);
  }
  return options;
}

Result<std::unique_ptr<ServiceHost>> ServiceHost::start(ServiceOptions options, std::unique_ptr<Service> service) {
  std::unique_ptr<ServiceHost> host(new ServiceHost());
  service->limits_ = options.limits;
  service->name_ = options.name;
  ActorSockets sockets{options.name, {}, {}, {}, options.limits};
  sockets.node_mailbox = {options.endpoint};
  // Like a client's: requests wait for the connection (at start, across a restart of
  // the node) rather than fail.
  sockets.peers[kNode] = options.node_client;
  sockets.feeds[kRooms] = options.node_publish;
  // A client of the node like any other: a fresh routing id each run, so a restarted
  // service is never refused as a duplicate.
  std::random_device random;
  sockets.identity = options.name + "-" + std::to_string(random()) + std::to_string(random());
  try {
    if (options.curve) {
      host->zap_ = std::make_unique<ZapHandler>(host->context_, options.curve->admitted, "service " + options.name);
      host->zap_->describe(zap_domain(options.name, "peers"), options.endpoint);
      sockets.curve = ActorSockets::Curve{options.curve->own, {{kNode, options.node_public}, {kRooms, options.node_public}}};
    }
    host->thread_ = std::make_unique<ActorThread>(host->context_, std::move(sockets), std::move(service));
  } catch (const std::exception& e) {
    return make_error(errc::unavailable, "service " + options.name + ": cannot bind " + options.endpoint + ": " + e.what());
  }
  return host;
}

ServiceHost::~ServiceHost() { stop(); }

void ServiceHost::stop() {
  if (thread_) thread_->stop();
  thread_.reset();
  if (zap_) zap_->stop();
}

}  // namespace switchboard::actors
