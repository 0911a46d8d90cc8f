// The node's webhook sender (docs/WEBHOOKS.md): POSTs the events of the rooms this node
// writes to the HTTP endpoints the topology names ([webhooks.NAME]), signed, in order per
// room, at least once, from a cursor kept in the store.
//
// One thread runs Boost.Beast's HTTP client and four ZeroMQ sockets on the node's
// inproc endpoints: a ROUTER chat tells of what it stored (webhook_frames.hpp), a DEALER
// to chat's internal mailbox for cursors, backlog and audience questions, a DEALER to
// chat's client mailbox for history pages, and a DEALER to presence (who is online, for
// notifications). What to do is decided by one Deliveries per webhook
// (deliveries.hpp); this class only carries it out.
//
// This header has no Boost in it.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <zmq.hpp>

#include "switchboard/actors/webhook/deliveries.hpp"
#include "switchboard/common/error.hpp"
#include "switchboard/router/host_port.hpp"
#include "switchboard/transport/limits.hpp"
#include "switchboard/transport/messages.hpp"

namespace switchboard::actors {

struct WebhookTarget {
  webhook::DeliveryOptions delivery;  ///< its name, rooms, users, connections, max_batch
  std::string url;                    ///< as the topology has it
  router::HttpUrl parsed;
  std::string secret;
  std::chrono::milliseconds timeout{5000};  ///< for an answer; then retried
  /// Offline notifications (webhook/notifications.hpp) instead of message events.
  bool notifications = false;
  /// Presence events (users coming online, going offline, changing status) too.
  bool presence = false;
};

struct WebhookSenderOptions {
  std::string node;  ///< in every event, and in logs
  std::vector<WebhookTarget> webhooks;
  /// The node's inproc endpoints: where the sender's ROUTER binds (chat's "webhooks"
  /// peer), chat's internal mailbox, and chat's client mailbox.
  std::string mailbox_endpoint, chat_internal_endpoint, chat_endpoint;
  /// The node's presence (`who`, for notifications).
  std::string presence_endpoint;
  transport::Limits limits;
};

struct WebhookStats {
  std::string name;
  webhook::Stats stats;
};

class WebhookSender {
 public:
  /// Binds the mailbox, connects to chat, and runs on a thread of its own. Errors:
  /// unavailable (an endpoint cannot be bound).
  static Result<std::unique_ptr<WebhookSender>> start(zmq::context_t& context, WebhookSenderOptions options);
  ~WebhookSender();  ///< stop()
  WebhookSender(const WebhookSender&) = delete;
  WebhookSender& operator=(const WebhookSender&) = delete;

  /// Ends the thread; requests on their way are dropped (delivered again later from the
  /// stored cursor). Idempotent.
  void stop();
  std::vector<WebhookStats> stats() const;

  struct Impl;

 private:
  explicit WebhookSender(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

namespace webhook {
/// An event's id: "m:" then the room name (bytes outside A-Z a-z 0-9 - . _ ~ as %XX),
/// ":" and the seq. Stable: the same message always has the same id.
std::string event_id(std::string_view room, std::uint64_t seq);
/// The JSON of a message event (docs/WEBHOOKS.md).
std::string event_json(std::string_view webhook, std::string_view node, const transport::RoomMessage& message);
/// The body of a request: the event itself, or a JSON array of them for more than one.
std::string request_body(std::string_view webhook, std::string_view node,
                         const std::vector<transport::RoomMessage>& events);
/// The X-Switchboard-Signature value: "v1=" and the hex HMAC-SHA256, keyed with
/// `secret`, of the timestamp (decimal seconds), ".", and the body.
std::string signature(std::string_view secret, std::uint64_t timestamp_s, std::string_view body);
}  // namespace webhook

}  // namespace switchboard::actors
