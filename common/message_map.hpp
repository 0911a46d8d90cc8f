// The message map (docs/PROTOCOL.md section 2.3) as bytes: the six fields of a room
// message, room, seq, user, ts, body and cmid, and `mentions` when it has any, as one
// msgpack map. It is what a history
// page holds per message and, in a store in clear, what the store keeps as the
// message's value (persistence), so a page is made of stored bytes as they are; the
// publish endpoint's payload is the same map with `v` and `op` in front
// (transport::message_event). Shared by transport and persistence, which know nothing
// of each other.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace switchboard {

/// The message map, packed: a fixmap of 6 (its first byte is 0x86), or of 7 with
/// `mentions` last (an array of strings) when there are any.
std::string encode_message_map(std::string_view room, std::uint64_t seq, std::string_view user, std::uint64_t ts_ms,
                               std::string_view body, std::string_view client_msg_id,
                               std::span<const std::string> mentions = {});

/// A message map's fields, pointing into the bytes they were read from.
struct MessageMapView {
  std::string_view room, user, body, client_msg_id;
  std::uint64_t seq = 0, ts_ms = 0;
  std::vector<std::string_view> mentions = {};
};
/// Reads a message map (the six keys and maybe `mentions`, any order, nothing else);
/// nullopt if `bytes` is not exactly one. Checks types only: these are bytes a node
/// wrote.
std::optional<MessageMapView> read_message_map(std::string_view bytes);

}  // namespace switchboard
