// The WebSocket bridge's first step on a client frame, apart from its sockets: the
// frame's bytes (a text frame of JSON, a binary frame of msgpack) to one request
// object with its id, or the error the client gets (docs/PROTOCOL.md section 10).
// Pure, so the fuzzer and the unit tests reach it without a connection.
//
// Internal to the library (bridge.cpp); it needs nlohmann/json.hpp.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include <nlohmann/json.hpp>

#include "switchboard/transport/limits.hpp"

namespace switchboard::actors {

/// A frame the bridge refuses: the error reply's id (0 when the frame had no
/// readable one), code and message; `close_reason` set: the connection is also
/// closed (1007, bad payload) with that reason, for frames that are not one map.
struct BridgeFrameError {
  std::uint64_t id = 0;
  std::string code;
  std::string message;
  const char* close_reason = nullptr;
};

/// A frame that is one JSON object (or msgpack map) with an unsigned integer id.
struct BridgeRequest {
  nlohmann::json request;
  std::uint64_t id = 0;
};

/// Reads a client frame. Errors: the codes of unpack_map for a binary frame that is
/// not one map within `limits`; too_large for text nested deeper than max_depth;
/// bad_frame for anything but one object; bad_field for a missing or non-integer id.
std::variant<BridgeRequest, BridgeFrameError> read_bridge_frame(bool binary, std::string_view data,
                                                                const transport::Limits& limits);

}  // namespace switchboard::actors
