// Limits: every size, count and depth Switchboard accepts from outside, in one place.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace switchboard::transport {

/// A node or service name: at most 64 bytes (docs/TOPOLOGY.md).
inline constexpr std::size_t kMaxServiceName = 64;
/// The longest reaction key, in bytes (a publish of kind react).
inline constexpr std::size_t kMaxReactionKey = 32;

struct Limits {
  /// A request frame larger than this gets a too_large error reply.
  std::size_t max_frame = 256 * 1024;
  /// ZMQ_MAXMSGSIZE on outside-facing sockets: ZeroMQ drops the connection of a peer
  /// that sends a larger message (no reply is possible). Must be >= max_frame.
  std::size_t max_socket_message = 1024 * 1024;
  /// Longest msgpack string or binary anywhere in a frame. Kept at the frame size so
  /// that a too-long field is caught by its own check, whose reply echoes the id.
  std::size_t max_string = 256 * 1024;
  /// Longest message body, in bytes of UTF-8.
  std::size_t max_body = 64 * 1024;
  /// Longest room name, user name and client message id, in bytes.
  std::size_t max_room = 128;
  std::size_t max_user = 64;
  std::size_t max_client_msg_id = 64;
  /// Largest msgpack array / map, and deepest nesting, in a request frame.
  std::size_t max_array = 1024;
  std::size_t max_map = 32;
  std::size_t max_depth = 8;
  /// Items in one publish_batch (at most max_array).
  std::size_t max_publish_batch = 1000;
  /// History pages: the default and the cap on "limit".
  std::uint32_t default_history_page = 50;
  std::uint32_t max_history_page = 1000;
  /// A retry of a publish with the same (room, user, client message id) within this
  /// window is acknowledged with the original seq and stored once.
  std::chrono::milliseconds dedup_window = std::chrono::minutes(10);
  /// At most this many publishes are remembered for deduplication (oldest forgotten).
  std::size_t dedup_max_entries = 1'000'000;
  /// Replies queued per client before a reply is dropped (and counted); the client's
  /// retry then gets its answer from the dedup window. Above the client's in-flight window.
  int reply_hwm = 10'000;
  /// Presence: a session's identifier and a status text, in bytes.
  std::size_t max_session = 64;
  std::size_t max_status_text = 256;
  /// Messages PUB queues per subscriber before it drops (the subscriber repairs the gap).
  int pub_sndhwm = 10'000;
  /// Rooms one user may be a member of (on the node that owns them); a join or room
  /// creation past it gets `limit_reached`.
  std::size_t max_rooms_per_user = 10'000;
  /// Users one message may mention (a publish's, or a batch item's, `mentions`); past
  /// it the request gets `too_large`. At most max_array.
  std::size_t max_mentions = 50;
  /// How long after a message its author may edit it, and delete it, in seconds (0: no
  /// bound). A room's owner deletes any message at any time (docs/PROTOCOL.md 4.7.2).
  std::uint64_t edit_window_s = 24 * 3600, delete_window_s = 0;
  /// Distinct reaction keys one message may carry; a react past it gets `limit_reached`.
  std::size_t max_reaction_keys = 20;
  /// Retention (docs/PROTOCOL.md 4.13), in seconds and messages; 0: none. The defaults
  /// apply to rooms without their own setting; the caps bound what an owner may set and
  /// what any room keeps (a cap lowered later trims rooms set above it).
  std::uint64_t retention_max_age_s = 0, retention_max_messages = 0;
  std::uint64_t retention_default_age_s = 0, retention_default_messages = 0;

  /// End users' rates, enforced by the WebSocket bridge with token buckets (a per_s
  /// of 0: no limit). Past one, a request gets `rate_limited` with `retry_after_ms`
  /// and does nothing. ZeroMQ clients are services (CURVE-admitted backends that post
  /// for many users) and are not rate limited.
  /// Publishes per second of one user, over all of the user's connections to a node.
  std::uint32_t publish_per_s = 20;
  std::uint32_t publish_burst = 60;
  /// Typing notices per second of one user, likewise.
  std::uint32_t typing_per_s = 2;
  std::uint32_t typing_burst = 6;
  /// Requests of any kind per second on one connection.
  std::uint32_t requests_per_s = 500;
  std::uint32_t request_burst = 2000;
};

}  // namespace switchboard::transport
