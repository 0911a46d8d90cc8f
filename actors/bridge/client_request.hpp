// The WebSocket bridge's reading of a client's request, apart from its sockets
// (docs/PROTOCOL.md section 10): first the frame (a text frame of JSON, a binary frame
// of msgpack) to one map with its id, then, once the bridge has let the request
// through (authenticated, within its rates), the op's fields to the node's typed
// request. The fields are checked by the node's own reader (transport::FieldReader),
// in the node's order, so a bad field gets the error the node would give, word for
// word. Pure, so the fuzzer and the unit tests reach it without a connection.
//
// Internal to the library (bridge.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "switchboard/common/error.hpp"
#include "switchboard/common/msgpack_reader.hpp"
#include "switchboard/transport/codec.hpp"
#include "switchboard/transport/limits.hpp"
#include "switchboard/transport/messages.hpp"
#include "switchboard/transport/presence_messages.hpp"

namespace switchboard::actors::bridge {

/// A frame the bridge refuses: the error reply's id (0 when the frame had no readable
/// one), code and message; `close_reason` set: the connection is also closed (1007,
/// bad payload) with that reason, for frames that are not one map.
struct FrameError {
  std::uint64_t id = 0;
  std::string code;
  std::string message;
  const char* close_reason = nullptr;
};

/// A frame that is one JSON object (or msgpack map) with an unsigned integer id.
/// `fields` reads it. Its strings point into the frame's bytes (binary) or into the
/// scratch its JSON was read into (text): it must outlive neither.
struct ClientFrame {
  MsgpackReader map;
  std::uint64_t id = 0;
  const MsgpackNode& root() const noexcept { return map.root(); }
};

/// Reads a client frame; `scratch` receives a text frame's JSON as msgpack (kept by the
/// caller from frame to frame, so that its storage is reused). Errors: the codes of
/// transport::unpack_map for a binary frame that is not one map within `limits`;
/// too_large for text nested deeper than limits.max_depth; bad_frame for anything but
/// one object; bad_field for a missing or non-integer id.
std::variant<ClientFrame, FrameError> read_client_frame(bool binary, std::string_view data,
                                                        const transport::Limits& limits, std::string& scratch);

/// Who a request is made for: the connection's user and its presence session. A
/// request's own `user` never stands for the connection's.
struct Caller {
  std::string_view user;
  std::string_view session;
};

/// A client request for the node: to its chat actor or to its presence actor.
using NodeRequest = std::variant<transport::RequestBody, transport::PresenceRequestBody>;

/// One op of section 10.2: who answers it, and what it counts against.
struct ClientOp {
  enum class Handler : std::uint8_t { auth, ping, subscribe, unsubscribe, chat, presence };
  /// A rate of the user's, over all of the user's connections (Limits::publish_per_s, ...).
  enum class Rate : std::uint8_t { none, publish, typing };
  std::string_view name;
  Handler handler;
  Rate rate = Rate::none;
  /// Made for the connection's presence session (there must be one).
  bool needs_session = false;
  /// chat and presence: reads the op's fields into the node's request, made for
  /// `caller`. Errors: bad_field, too_large, bad_utf8, as the node's reader gives them.
  Result<NodeRequest> (*read)(transport::FieldReader& fields, const transport::Limits& limits,
                              const Caller& caller) = nullptr;
};

/// The op of section 10.2 named `name`, or nullptr (unknown_op). The node's ops that are
/// not the bridge's (hello, shards, call, publish_batch) are unknown here.
const ClientOp* find_client_op(std::string_view name) noexcept;

}  // namespace switchboard::actors::bridge
