// libFuzzer target: the HTTP API's reading of a request (actors/api/api_request.hpp):
// the input's first line is the request's path, the rest its body, read for a key with
// every right and for a key with a narrow grant; and the input whole as a reply frame
// of the node. Any bytes must give the node's frame or an error with a code, a message
// and a status of docs/API.md's table: no crash, no sanitizer report, no exception. A
// frame the API sends, the node reads back as the same request with the API's id.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "switchboard/actors/api/api_request.hpp"
#include "switchboard/transport/codec.hpp"

using namespace switchboard;
using namespace switchboard::actors::api;

namespace {

bool documented(unsigned status) {
  for (unsigned s : {200u, 400u, 401u, 403u, 404u, 409u, 413u, 422u, 429u, 500u, 503u, 507u})
    if (s == status) return true;
  return false;
}

void check_answer(const Answer& a) {
  if (!documented(a.status) || a.body.empty() || a.body.front() != '{' || a.body.back() != '}') std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const transport::Limits limits;
  static std::string scratch;
  static const router::Grant narrow = [] {
    router::Grant g;
    g.name = "fuzz";
    g.users = {"bot"};
    g.rooms = {"ops-*"};
    g.ops = router::Grant::Ops::read;
    return g;
  }();
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto newline = input.find('\n');
  const std::string_view path = input.substr(0, newline);
  const std::string_view body = newline == std::string_view::npos ? std::string_view() : input.substr(newline + 1);

  if (auto op = find_op(path)) {
    for (const router::Grant* grant : {static_cast<const router::Grant*>(nullptr), &narrow}) {
      auto frame = read_request(op->first, op->second, body, 7, grant, limits, scratch);
      if (!frame) {
        if (frame.error().code == errc::ok || frame.error().message.empty() ||
            !documented(http_status(frame.error().code)))
          std::abort();
        continue;
      }
      if (op->second == Handler::chat) {
        auto back = transport::decode_request(frame->frame, limits);
        if (back.id != 7 || !back.body || transport::op_name(*back.body) != op->first) std::abort();
      } else {
        auto back = transport::decode_presence_request(frame->frame, limits);
        if (back.id != 7 || !back.body || transport::op_name(*back.body) != op->first) std::abort();
      }
    }
  } else if (op.error().code != errc::unknown_op || op.error().message.empty()) {
    std::abort();
  }

  std::uint64_t id = 0;
  check_answer(read_reply(Handler::chat, input, limits, id));
  check_answer(read_reply(Handler::presence, input, limits, id));
  return 0;
}
