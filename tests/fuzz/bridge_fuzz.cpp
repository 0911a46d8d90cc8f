// libFuzzer target: the WebSocket bridge's reading of client frames
// (actors::read_bridge_frame), each input tried as a text frame (JSON) and as a
// binary frame (msgpack). Any bytes must give a request or an error reply: no crash,
// no sanitizer report, no exception. A request is an object with the id it says; an
// error has a code and a message, and closes the connection only with a reason.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "switchboard/actors/bridge_frame.hpp"

using namespace switchboard;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const transport::Limits limits;
  const std::string_view frame(reinterpret_cast<const char*>(data), size);
  for (bool binary : {false, true}) {
    auto read = actors::read_bridge_frame(binary, frame, limits);
    if (const auto* request = std::get_if<actors::BridgeRequest>(&read)) {
      const auto id = request->request.find("id");
      if (!request->request.is_object() || id == request->request.end() || *id != request->id) std::abort();
    } else {
      const auto& error = std::get<actors::BridgeFrameError>(read);
      if (error.code.empty() || error.message.empty()) std::abort();
    }
  }
  return 0;
}
