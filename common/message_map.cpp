#include "switchboard/common/message_map.hpp"

#include <msgpack.hpp>

#include "switchboard/common/msgpack_reader.hpp"

namespace switchboard {
namespace {

struct Bytes {
  std::string out;
  void write(const char* data, std::size_t size) { out.append(data, size); }
};

}  // namespace

std::string encode_message_map(std::string_view room, std::uint64_t seq, std::string_view user, std::uint64_t ts_ms,
                               std::string_view body, std::string_view client_msg_id,
                               std::span<const std::string> mentions) {
  Bytes bytes;
  std::size_t mention_bytes = 0;
  for (const auto& name : mentions) mention_bytes += name.size() + 5;
  bytes.out.reserve(body.size() + room.size() + user.size() + client_msg_id.size() + mention_bytes + 64);
  msgpack::packer<Bytes> pk(bytes);
  pk.pack_map(mentions.empty() ? 6 : 7);
  pk.pack(std::string_view("room"));
  pk.pack(room);
  pk.pack(std::string_view("seq"));
  pk.pack(seq);
  pk.pack(std::string_view("user"));
  pk.pack(user);
  pk.pack(std::string_view("ts"));
  pk.pack(ts_ms);
  pk.pack(std::string_view("body"));
  pk.pack(body);
  pk.pack(std::string_view("cmid"));
  pk.pack(client_msg_id);
  if (!mentions.empty()) {
    pk.pack(std::string_view("mentions"));
    pk.pack_array(static_cast<std::uint32_t>(mentions.size()));
    for (const auto& name : mentions) pk.pack(std::string_view(name));
  }
  return std::move(bytes.out);
}

std::optional<MessageMapView> read_message_map(std::string_view bytes) {
  const msgpack::unpack_limit limit(/*array=*/bytes.size(), /*map=*/7, /*str=*/bytes.size(), /*bin=*/0, /*ext=*/0,
                                    /*depth=*/2);
  MsgpackReader reader;
  if (!reader.read(bytes, limit)) return std::nullopt;  // malformed msgpack, past the limits
  const MsgpackNode& o = reader.root();
  if (reader.consumed() != bytes.size() || !o.is(MsgpackType::map) || o.size < 6) return std::nullopt;
  MessageMapView m;
  int seen = 0;
  auto names = [&](const MsgpackNode& v) {
    if (!v.is(MsgpackType::array) || v.size == 0) return false;
    m.mentions.reserve(v.size);
    for (const MsgpackNode& name : v.elements()) {
      if (!name.is(MsgpackType::str)) return false;
      m.mentions.push_back(name.view());
    }
    seen |= 64;
    return true;
  };
  const MsgpackNode* kv = &o + 1;
  for (std::uint32_t i = 0; i < o.size; ++i, kv = kv[1].next()) {
    const MsgpackNode& k = kv[0];
    const MsgpackNode& v = kv[1];
    if (!k.is(MsgpackType::str)) return std::nullopt;
    const std::string_view key = k.view();
    auto text = [&](std::string_view& into, int bit) {
      if (!v.is(MsgpackType::str)) return false;
      into = v.view();
      seen |= bit;
      return true;
    };
    auto number = [&](std::uint64_t& into, int bit) {
      if (!v.is(MsgpackType::positive_integer)) return false;
      into = v.via.u64;
      seen |= bit;
      return true;
    };
    const bool ok = key == "room"   ? text(m.room, 1)
                    : key == "seq"  ? number(m.seq, 2)
                    : key == "user" ? text(m.user, 4)
                    : key == "ts"   ? number(m.ts_ms, 8)
                    : key == "body" ? text(m.body, 16)
                    : key == "cmid" ? text(m.client_msg_id, 32)
                    : key == "mentions" ? names(v)
                                    : false;
    if (!ok) return std::nullopt;
  }
  if ((seen & 63) != 63 || (o.size == 7) != ((seen & 64) != 0)) return std::nullopt;
  return m;
}

}  // namespace switchboard
