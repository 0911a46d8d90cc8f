// libFuzzer target: the WebSocket bridge's reading of client frames
// (actors::bridge::read_client_frame, then the op's fields into the node's typed
// request), each input tried as a text frame (JSON) and as a binary frame (msgpack).
// Any bytes must give a request or an error reply: no crash, no sanitizer report, no
// exception. A request is a map with the id it says, and what the bridge reads for the
// node the node reads back the same; an error has a code and a message, and closes the
// connection only with a reason.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "switchboard/actors/bridge/client_request.hpp"

using namespace switchboard;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const transport::Limits limits;
  static std::string scratch;
  const std::string_view frame(reinterpret_cast<const char*>(data), size);
  for (bool binary : {false, true}) {
    auto read = actors::bridge::read_client_frame(binary, frame, limits, scratch);
    if (const auto* error = std::get_if<actors::bridge::FrameError>(&read)) {
      if (error->code.empty() || error->message.empty()) std::abort();
      continue;
    }
    const auto& request = std::get<actors::bridge::ClientFrame>(read);
    transport::FieldReader fields(request.root());
    const MsgpackNode* id = fields.find("id");
    if (!request.root().is(MsgpackType::map) || id == nullptr || id->via.u64 != request.id) std::abort();
    const MsgpackNode* op_name = fields.find("op");
    if (op_name == nullptr || !op_name->is(MsgpackType::str)) continue;
    const auto* op = actors::bridge::find_client_op(op_name->view());
    if (op == nullptr || op->read == nullptr) continue;
    auto typed = op->read(fields, limits, {"user", "session"});
    if (!typed) {
      if (typed.error().message.empty()) std::abort();
      continue;
    }
    // The node takes what the bridge read, and reads it back to the same frame.
    if (const auto* chat = std::get_if<transport::RequestBody>(&*typed)) {
      const std::string sent = transport::encode_request({1, *chat, "user"});
      auto back = transport::decode_request(sent, limits);
      if (!back.body || transport::encode_request({1, *back.body, back.as}) != sent) std::abort();
    } else {
      const auto& presence = std::get<transport::PresenceRequestBody>(*typed);
      const std::string sent = transport::encode_presence_request({1, presence, "user"});
      auto back = transport::decode_presence_request(sent, limits);
      if (!back.body || transport::encode_presence_request({1, *back.body, back.as}) != sent) std::abort();
    }
  }
  return 0;
}
