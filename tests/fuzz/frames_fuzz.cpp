// libFuzzer target: every decoder that reads bytes from outside (client requests,
// replies, published messages, chat<->persistence frames). Any input must give a
// value or an Error: no crash, no sanitizer report, no unbounded allocation. A
// request that decodes must survive encode -> decode unchanged in kind and id.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "switchboard/actors/store_protocol.hpp"
#include "switchboard/transport/codec.hpp"

using namespace switchboard;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view frame(reinterpret_cast<const char*>(data), size);
  static const transport::Limits limits;

  auto request = transport::decode_request(frame, limits);
  if (request.body) {
    auto again = transport::decode_request(transport::encode_request({request.id, *request.body}), limits);
    if (!again.body || again.id != request.id || again.body->index() != request.body->index()) std::abort();
  }
  if (auto reply = transport::decode_reply(frame, limits)) {
    auto again = transport::decode_reply(transport::encode_reply(*reply), limits);
    if (!again || again->body.index() != reply->body.index()) std::abort();
  }
  (void)transport::decode_message(frame, limits);
  (void)actors::store::decode(frame);
  return 0;
}
