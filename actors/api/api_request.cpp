#include "switchboard/actors/api/api_request.hpp"


#include "switchboard/actors/bridge/json_codec.hpp"
#include "switchboard/actors/grants.hpp"
#include "switchboard/transport/codec.hpp"
#include "switchboard/transport/ops.hpp"

namespace switchboard::actors::api {

unsigned http_status(errc code) noexcept {
  switch (code) {
    case errc::ok: return 200;
    case errc::bad_frame:
    case errc::bad_field:
    case errc::bad_utf8:
    case errc::unsupported_version: return 400;
    case errc::unauthenticated: return 401;
    case errc::forbidden:
    case errc::not_member: return 403;
    case errc::unknown_op:
    case errc::no_such_room:
    case errc::no_such_service:
    case errc::unknown_session:
    case errc::no_such_message: return 404;
    case errc::name_unavailable:
    case errc::limit_reached:
    case errc::message_deleted:
    case errc::too_late:
    case errc::no_change:
    case errc::nested_thread: return 409;
    case errc::too_large: return 413;
    case errc::refused: return 422;
    case errc::rate_limited: return 429;
    case errc::unavailable:
    case errc::timeout: return 503;
    case errc::storage_full: return 507;
    case errc::internal: return 500;
  }
  return 500;
}

Answer error_answer(errc code, std::string_view message) {
  bridge::JsonWriter w;
  w.begin_object().str("op", "error").str("code", errc_name(code)).str("message", message).end_object();
  return {http_status(code), w.take()};
}

namespace {

constexpr std::string_view kPrefix = "/api/v1/";
/// The node's operations that are not the API's: backup is a stream of chunks.
constexpr std::string_view kNotOffered = "backup";

}  // namespace

Result<std::pair<std::string_view, Handler>> find_op(std::string_view target) {
  const std::string_view path = target.substr(0, target.find('?'));
  if (path.substr(0, kPrefix.size()) != kPrefix)
    return make_error(errc::unknown_op, "the API's operations are at " + std::string(kPrefix) + "OP (docs/API.md)");
  const std::string_view op = path.substr(kPrefix.size());
  for (const auto& traits : transport::kRequestOps)
    if (traits.name == op && op != kNotOffered) return std::pair{traits.name, Handler::chat};
  for (std::string_view presence : {"who", "status"})
    if (presence == op) return std::pair{presence, Handler::presence};
  return make_error(errc::unknown_op, "'" + std::string(op.substr(0, 64)) +
                                          "' is not an operation of the API (docs/API.md); backup and presence "
                                          "sessions belong to connections");
}

Result<NodeFrame> read_request(std::string_view op, Handler handler, std::string_view body, std::uint64_t id,
                               const router::Grant* grant, const transport::Limits& limits, std::string& scratch) {
  // An empty body is an empty object; anything else is one JSON object.
  const std::string_view text = body.find_first_not_of(" \t\r\n") == std::string_view::npos ? "{}" : body;
  auto map = bridge::json_object(text, limits.max_depth, scratch);
  if (!map && map.error().code == errc::too_large) return map.error();
  if (!map) return make_error(errc::bad_frame, "the body is " + map.error().message);
  transport::FieldReader fields(map->root());
  for (std::string_view envelope : {"v", "op", "id"})
    if (fields.find(envelope))
      return make_error(errc::bad_field, "'" + std::string(envelope) +
                                             "' is not a field of the body: the path names the operation");
  // The body's pairs go into the frame as they are, after the node's header: json_object
  // wrote the map's header as 0xdf and a 32-bit count, 5 bytes.
  const std::uint32_t count = map->root().size;
  transport::FrameBuffer buffer(scratch.size() + 32);
  transport::Packer pk(buffer);
  transport::pack_header(pk, count, op, id);
  buffer.bytes.append(scratch, 5, std::string::npos);
  NodeFrame out{handler, std::move(buffer.bytes)};

  // The node reads it as it reads any client's frame: the same checks, in its order.
  std::optional<Error> refused;
  if (handler == Handler::chat) {
    auto decoded = transport::decode_request(out.frame, limits);
    if (!decoded.body) return decoded.body.error();
    if (grant) refused = check_grant(*grant, *decoded.body, decoded.as);
  } else {
    auto decoded = transport::decode_presence_request(out.frame, limits);
    if (!decoded.body) return decoded.body.error();
    if (grant) refused = check_grant(*grant, *decoded.body, decoded.as);
  }
  if (refused) return *refused;
  return out;
}

Answer read_reply(Handler handler, std::string_view frame, const transport::Limits& limits, std::uint64_t& id) {
  id = 0;
  if (handler == Handler::chat) {
    auto reply = transport::decode_reply(frame, limits);
    if (!reply) return error_answer(errc::internal, "the node's reply cannot be read: " + reply.error().message);
    id = reply->id;
    const auto* error = std::get_if<transport::ErrorReply>(&reply->body);
    if (error) return error_answer(error->code, error->message);
    return {200, bridge::reply_json(*reply, bridge::Envelope::op_only)};
  }
  auto reply = transport::decode_presence_reply(frame, limits);
  if (!reply) return error_answer(errc::internal, "the node's reply cannot be read: " + reply.error().message);
  id = reply->id;
  const auto* error = std::get_if<transport::ErrorReply>(&reply->body);
  if (error) return error_answer(error->code, error->message);
  return {200, bridge::presence_reply_json(*reply, bridge::Envelope::op_only)};
}

}  // namespace switchboard::actors::api
