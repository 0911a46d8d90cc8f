#include "switchboard/actors/bridge_frame.hpp"

#include "switchboard/common/error.hpp"
#include "switchboard/transport/codec.hpp"

namespace switchboard::actors {

std::variant<BridgeRequest, BridgeFrameError> read_bridge_frame(bool binary, std::string_view data,
                                                                const transport::Limits& limits) {
  using json = nlohmann::json;
  json req;
  if (binary) {
    auto checked = transport::unpack_map(data, limits);
    if (!checked)
      return BridgeFrameError{0, std::string(errc_name(checked.error().code)), checked.error().message,
                              "not one msgpack map"};
    req = json::from_msgpack(data, true, false);
  } else {
    bool too_deep = false;
    const int max_depth = static_cast<int>(limits.max_depth);
    req = json::parse(
        data,
        [&](int depth, json::parse_event_t, json&) {
          if (depth > max_depth) too_deep = true;
          return !too_deep;
        },
        false);
    if (too_deep)
      return BridgeFrameError{0, "too_large", "nesting deeper than " + std::to_string(max_depth), "nesting too deep"};
  }
  if (!req.is_object())
    return BridgeFrameError{0, "bad_frame",
                            binary ? "a binary frame holds one msgpack map" : "a text frame holds one JSON object",
                            "not one JSON object"};
  const auto id_it = req.find("id");
  if (id_it == req.end() || !id_it->is_number_unsigned())
    return BridgeFrameError{0, "bad_field", "field 'id' must be an unsigned integer"};
  const std::uint64_t id = id_it->get<std::uint64_t>();
  return BridgeRequest{std::move(req), id};
}

}  // namespace switchboard::actors
