// Calls to services: a client's `call` goes, through whichever node it talks to, to
// the service named in the topology, and the service's answer comes back unchanged.
// Every node is linked to every service, so a call never crosses between nodes.
#include <spdlog/spdlog.h>

#include "switchboard/actors/chat.hpp"
#include "switchboard/transport/codec.hpp"

namespace switchboard::actors {

void Chat::call_service(const Caller& caller, const transport::Call& call, std::string_view frame, const Now& now,
                        Effects& out) {
  auto service = options_.services.find(call.service);
  if (service == options_.services.end())
    return reply_error(out, caller, errc::no_such_service, "the topology names no service '" + call.service + "'");
  const std::uint64_t corr = next_forward_++;
  const auto deadline = now.steady + service->second;
  calls_.emplace(corr, ServiceCall{caller, call.service, deadline});
  call_deadlines_.emplace(deadline, corr);
  ++stats_.calls;
  out.send(service_actor(call.service), router::encode_peer(router::PeerKind::forward, corr, frame));
  out.start_timer(kCallTimer, deadline);
}

void Chat::on_service_message(const std::string& service, std::string_view frame, bool undeliverable, const Now& now,
                              Effects& out) {
  auto peer = router::decode_peer(frame);
  if (!peer) {
    spdlog::error("chat: unreadable frame from service {}", service);
    return;
  }
  auto call = calls_.find(peer->corr);
  if (call == calls_.end() || call->second.service != service) {
    if (options_.hook && options_.hook->service == service) on_hook_message(*peer, undeliverable, now, out);
    return;  // else answered late, after its caller was told unavailable
  }
  if (undeliverable)
    return fail_call(peer->corr, "service '" + service + "' is not connected; try again later", out);
  if (peer->kind != router::PeerKind::reply) return;
  // The service's answer goes back as it is, once it is known to be a reply to this
  // very request: a service cannot send a client something unreadable.
  ServiceCall c = take_call(call);
  auto reply = transport::decode_reply(peer->body, options_.limits);
  if (!reply || reply->id != c.caller.request_id) {
    spdlog::error("chat: service {} answered a call with {}", service,
                  reply ? "another request's id" : "an unreadable reply: " + reply.error().message);
    return reply_error(out, c.caller, errc::internal, "service '" + service + "' answered with an unreadable reply");
  }
  send_frame(out, c.caller, std::string(peer->body));
}

Chat::ServiceCall Chat::take_call(std::unordered_map<std::uint64_t, ServiceCall>::iterator it) {
  ServiceCall c = std::move(it->second);
  call_deadlines_.erase({c.deadline, it->first});
  calls_.erase(it);
  return c;
}

void Chat::fail_call(std::uint64_t corr, const std::string& why, Effects& out) {
  auto it = calls_.find(corr);
  if (it == calls_.end()) return;
  ServiceCall c = take_call(it);
  ++stats_.call_failures;
  reply_error(out, c.caller, errc::unavailable, why);
}

void Chat::expire_calls(const Now& now, Effects& out) {
  while (!call_deadlines_.empty() && call_deadlines_.begin()->first <= now.steady) {
    const std::uint64_t corr = call_deadlines_.begin()->second;
    const auto& c = calls_.at(corr);
    fail_call(corr, "service '" + c.service + "' did not answer within " +
                        std::to_string(options_.services.at(c.service).count()) + " ms; try again later", out);
  }
}

}  // namespace switchboard::actors
