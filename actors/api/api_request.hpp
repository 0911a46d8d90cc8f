// The HTTP API's reading of a request and writing of its answer, apart from its
// sockets (docs/API.md): a path and a JSON body to the node's request frame, checked
// as the node reads it and against the key's grant; the node's reply frame to an HTTP
// status and JSON. Pure, so the unit tests reach it without a connection.
//
// Internal to the library (api_server.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "switchboard/common/error.hpp"
#include "switchboard/router/topology.hpp"
#include "switchboard/transport/limits.hpp"

namespace switchboard::actors::api {

/// The actor that answers an operation.
enum class Handler : std::uint8_t { chat, presence };

/// A request for the node: its frame (docs/PROTOCOL.md section 2.1, with `v`, `op` and
/// the `id` given), and who answers it.
struct NodeFrame {
  Handler handler = Handler::chat;
  std::string frame;
};

/// An answer to the HTTP client: a status and a JSON body.
struct Answer {
  unsigned status = 200;
  std::string body;
};

/// The HTTP status of an error code (docs/API.md, "Errors").
unsigned http_status(errc code) noexcept;
/// An error answer: http_status(code) and {"op":"error","code":CODE,"message":TEXT}.
Answer error_answer(errc code, std::string_view message);

/// The operation `target` names ("/api/v1/OP", a query string ignored), and who answers
/// it. Error: unknown_op (the message says what the API offers).
Result<std::pair<std::string_view, Handler>> find_op(std::string_view target);

/// Reads the body of a request for `op` (one JSON object of its fields: docs/API.md) to
/// the node's frame with request id `id`, checked field by field as the node checks it
/// and, for a key with a `grant` (nullptr: every right), against the grant. Errors:
/// bad_frame (not one JSON object: the message says at which byte), bad_field (a field,
/// or `v`, `op` or `id` in the body), too_large, bad_utf8, forbidden (the grant's
/// message). `scratch` keeps its storage from request to request.
Result<NodeFrame> read_request(std::string_view op, Handler handler, std::string_view body, std::uint64_t id,
                               const router::Grant* grant, const transport::Limits& limits, std::string& scratch);

/// The node's reply frame to `handler`'s request, as the API answers it: 200 and the
/// reply's JSON without `v` and `id`, or an error answer. A frame that cannot be read is
/// `internal`. `id` receives the reply's request id (0 if the frame cannot be read).
Answer read_reply(Handler handler, std::string_view frame, const transport::Limits& limits, std::uint64_t& id);

}  // namespace switchboard::actors::api
