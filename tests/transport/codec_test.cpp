#include <gtest/gtest.h>

#include "switchboard/common/message_map.hpp"
#include "switchboard/transport/codec.hpp"

using namespace switchboard;
using namespace switchboard::transport;

namespace {

std::string pack_map(std::initializer_list<std::pair<std::string, msgpack::object>> fields) {
  FrameBuffer buffer;
  Packer pk(buffer);
  pk.pack_map(static_cast<std::uint32_t>(fields.size()));
  for (const auto& [k, v] : fields) {
    pk.pack(k);
    pk.pack(v);
  }
  return to_string(buffer);
}

errc decode_code(std::string_view frame, const Limits& limits = {}) {
  auto d = decode_request(frame, limits);
  return d.body ? errc::ok : d.body.error().code;
}

}  // namespace

TEST(Codec, RequestsRoundTrip) {
  Limits limits;
  std::vector<Request> requests = {
      {1, Hello{}},
      {2, Ping{}},
      {3, CreateRoom{"general", "ann"}},
      {4, Join{"general", "bob"}},
      {5, Leave{"general", "bob"}},
      {6, ListRooms{}},
      {7, ListRooms{"ann"}},
      {8, Members{"general"}},
      {9, Publish{"general", "ann", "m-1", "hello \xF0\x9F\x98\x80"}},
      {10, History{"general", 20, 5, std::nullopt}},
      {11, History{"general", 0, std::nullopt, 7}},
      {12, LastSeq{"general"}},
      {13, Call{"bot", "ann", "check hi"}},
  };
  for (const auto& r : requests) {
    auto d = decode_request(encode_request(r), limits);
    ASSERT_TRUE(d.body) << op_name(r.body) << ": " << d.body.error().message;
    EXPECT_EQ(d.id, r.id);
    EXPECT_EQ(d.body->index(), r.body.index());
  }
  auto d = decode_request(encode_request({9, Publish{"general", "ann", "m-1", "hi"}}), limits);
  const auto& p = std::get<Publish>(*d.body);
  EXPECT_EQ(p.room, "general");
  EXPECT_EQ(p.user, "ann");
  EXPECT_EQ(p.client_msg_id, "m-1");
  EXPECT_EQ(p.body, "hi");
}

TEST(Codec, BanAndUnbanRoundTripWithTheirReplies) {
  Limits limits;
  auto ban = decode_request(encode_request({1, Ban{"general", "bob"}, "ann"}), limits);
  ASSERT_TRUE(ban.body) << ban.body.error().message;
  EXPECT_EQ(std::get<Ban>(*ban.body).room, "general");
  EXPECT_EQ(std::get<Ban>(*ban.body).user, "bob");
  EXPECT_EQ(ban.as, std::optional<std::string>("ann"));
  auto unban = decode_request(encode_request({2, Unban{"general", "bob"}}), limits);
  ASSERT_TRUE(unban.body) << unban.body.error().message;
  EXPECT_EQ(std::get<Unban>(*unban.body).user, "bob");
  EXPECT_STREQ(op_name(RequestBody{Ban{}}), "ban");
  EXPECT_STREQ(op_name(RequestBody{Unban{}}), "unban");
  auto banned = decode_reply(encode_reply({3, BanOk{true}}), limits);
  ASSERT_TRUE(banned) << banned.error().message;
  EXPECT_TRUE(std::get<BanOk>(banned->body).banned);
  auto unbanned = decode_reply(encode_reply({4, UnbanOk{false}}), limits);
  ASSERT_TRUE(unbanned) << unbanned.error().message;
  EXPECT_FALSE(std::get<UnbanOk>(unbanned->body).unbanned);
  EXPECT_STREQ(op_name(ReplyBody{UnbanOk{}}), "unban");
  // Without a user: bad_field, as remove_member.
  using msgpack::object;
  msgpack::zone z;
  for (const char* op : {"ban", "unban"})
    EXPECT_EQ(decode_code(pack_map({{"v", object(1)}, {"op", object(std::string_view(op), z)}, {"id", object(5)},
                                    {"room", object(std::string_view("general"), z)}})),
              errc::bad_field)
        << op;
}

TEST(Codec, RepliesRoundTrip) {
  Limits limits;
  HistoryOk history{{{"general", 1, "ann", 1700000000000, "hi", "c1"}, {"general", 2, "bob", 1700000000001, "yo", "c2"}},
                    true};
  std::vector<Reply> replies = {
      {1, HelloOk{1, "n1", {"tcp://127.0.0.1:7401"}, 65536, {"tcp://127.0.0.1:7402"}, {"tcp://127.0.0.1:7403"}}},
      {2, PublishOk{"general", 42, 1700000000000, true}},
      {3, history},
      {4, ErrorReply{errc::not_member, "'x' is not a member"}},
      {5, RoomsOk{{"a", "b"}}},
      {6, LastSeqOk{"general", 9}},
      {7, CallOk{"bot", "ok"}},
  };
  for (const auto& r : replies) {
    auto d = decode_reply(encode_reply(r), limits);
    ASSERT_TRUE(d) << d.error().message;
    EXPECT_EQ(d->id, r.id);
    EXPECT_EQ(d->body.index(), r.body.index());
  }
  auto h = decode_reply(encode_reply({3, history}), limits);
  EXPECT_EQ(std::get<HistoryOk>(h->body).messages, history.messages);
  EXPECT_TRUE(std::get<HistoryOk>(h->body).more);
  auto e = decode_reply(encode_reply({4, ErrorReply{errc::not_member, "nope"}}), limits);
  EXPECT_EQ(std::get<ErrorReply>(e->body).code, errc::not_member);
  ShardsOk shards{{{"s1", "a", "replicated", 2, 300, true, {{"b", 298, true}, {"c", 120, false}}},
                   {"s2", "b", "local", 0, 0, false, {}}},
                  {"b"}};
  auto s = decode_reply(encode_reply({8, shards}), limits);
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(std::get<ShardsOk>(s->body).shards, shards.shards);
  EXPECT_EQ(std::get<ShardsOk>(s->body).missing, shards.missing);
  auto asked = decode_request(encode_request({9, ListShards{}}), limits);
  ASSERT_TRUE(asked.body) << asked.body.error().message;
  EXPECT_TRUE(std::holds_alternative<ListShards>(*asked.body));
}

TEST(Codec, MessageEventRoundTrips) {
  RoomMessage m{"general", 7, "ann", 1700000000000, "body", "cmid-7"};
  auto d = decode_message(encode_message(m), Limits{});
  ASSERT_TRUE(d);
  EXPECT_EQ(*d, m);
}

TEST(Codec, TopicOfARoomDoesNotPrefixAnother) {
  EXPECT_EQ(room_topic("a"), std::string("a\0", 2));
  EXPECT_NE(room_topic("ab").rfind(room_topic("a"), 0), 0u);
}

TEST(Codec, HeadsEventRoundTripsAndItsTopicIsNoRoomsTopic) {
  HeadsEvent heads{"node-a", 42, {{"general", 7}, {"x", 1}}};
  auto d = decode_heads(encode_heads(heads), Limits{});
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_EQ(*d, heads);
  auto empty = decode_heads(encode_heads(HeadsEvent{"node-a", 43, {}}), Limits{});
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->rooms.empty());
  EXPECT_EQ(heads_topic().rfind(room_topic(""), 0), 0u) << "only the room with no name, which no room has";
  EXPECT_NE(heads_topic().back(), '\0') << "so no subscription to a room sees heads";
}

TEST(Codec, AHeadsEventWithABadRoomEntryIsRefusedNamingIt) {
  FrameBuffer buffer;
  Packer pk(buffer);
  pk.pack_map(5);
  pack_field(pk, "v", kProtocolVersion);
  pack_field(pk, "op", std::string_view("heads"));
  pack_field(pk, "node", std::string_view("a"));
  pack_field(pk, "n", std::uint64_t{1});
  pk.pack(std::string_view("rooms"));
  pk.pack_array(2);
  pk.pack_array(2);
  pk.pack(std::string_view("r"));
  pk.pack(std::uint64_t{3});
  pk.pack_array(1);
  pk.pack(std::string_view("s"));
  auto d = decode_heads(buffer.bytes, Limits{});
  ASSERT_FALSE(d);
  EXPECT_EQ(d.error().code, errc::bad_field);
  EXPECT_EQ(d.error().message, "rooms[1] must be [room, seq]");
  EXPECT_EQ(decode_heads(encode_message(RoomMessage{"r", 1, "u", 1, "b", "c"}), Limits{}).error().code, errc::unknown_op);
}

TEST(Codec, RejectsWhatIsNotOneMap) {
  EXPECT_EQ(decode_code(""), errc::bad_frame);
  EXPECT_EQ(decode_code("\xc1"), errc::bad_frame);                 // never-used byte
  EXPECT_EQ(decode_code("\x93\x01\x02\x03"), errc::bad_frame);     // an array
  EXPECT_EQ(decode_code("\x81\xa1v"), errc::bad_frame);            // truncated
  std::string ok = encode_request({1, Ping{}});
  EXPECT_EQ(decode_code(ok + "\x01"), errc::bad_frame);            // trailing byte
  EXPECT_EQ(decode_code("\x81\x01\x01"), errc::bad_frame);         // integer key
}

TEST(Codec, HugeArrayHeaderIsRefusedBeforeAllocating) {
  // 5 bytes announcing 4 billion elements (msgpack-c issue #1013).
  EXPECT_EQ(decode_code(std::string("\xdd\xff\xff\xff\xff", 5)), errc::too_large);
  EXPECT_EQ(decode_code(std::string("\xdf\xff\xff\xff\xff", 5)), errc::too_large);
  // A string header claiming 4 GiB: refused (msgpack-c reads strings in place, so it
  // finds the frame truncated before any allocation).
  EXPECT_NE(decode_code(std::string("\xdb\xff\xff\xff\xff", 5)), errc::ok);
}

TEST(Codec, LimitsAreEnforced) {
  Limits limits;
  limits.max_frame = 1000;
  EXPECT_EQ(decode_code(std::string(1001, 'x'), limits), errc::too_large);
  std::string deep(20, '\x91');  // [[[[...]]]]
  deep += '\x01';
  EXPECT_EQ(decode_code(deep), errc::too_large);
  Publish big{"general", "ann", "c", std::string(limits.max_body + 1, 'x')};
  EXPECT_EQ(decode_code(encode_request({1, big})), errc::too_large);
  Publish long_room{std::string(Limits{}.max_room + 1, 'r'), "ann", "c", "x"};
  EXPECT_EQ(decode_code(encode_request({1, long_room})), errc::too_large);
}

TEST(Codec, RejectsBadFieldsWithTheirCodes) {
  using msgpack::object;
  msgpack::zone z;
  auto s = [&](const char* v) { return object(std::string_view(v), z); };
  EXPECT_EQ(decode_code(pack_map({{"v", object(2)}, {"op", s("ping")}, {"id", object(1)}})), errc::unsupported_version);
  EXPECT_EQ(decode_code(pack_map({{"v", object(1)}, {"op", s("dance")}, {"id", object(1)}})), errc::unknown_op);
  EXPECT_EQ(decode_code(pack_map({{"op", s("ping")}, {"id", object(1)}})), errc::bad_field);
  EXPECT_EQ(decode_code(pack_map({{"v", object(1)}, {"op", s("ping")}})), errc::bad_field);
  EXPECT_EQ(decode_code(pack_map({{"v", object(1)}, {"op", s("ping")}, {"id", s("x")}})), errc::bad_field);
  EXPECT_EQ(decode_code(pack_map({{"v", object(1)}, {"op", s("publish")}, {"id", object(1)}, {"room", object(5)},
                                  {"user", s("a")}, {"cmid", s("c")}, {"body", s("b")}})),
            errc::bad_field);
  EXPECT_EQ(decode_code(pack_map({{"v", object(1)}, {"op", s("publish")}, {"id", object(1)}, {"room", s("r")},
                                  {"user", s("a")}, {"cmid", s("c")}, {"body", s("\xff\xfe")}})),
            errc::bad_utf8);
  EXPECT_EQ(decode_code(pack_map({{"v", object(1)}, {"op", s("publish")}, {"id", object(1)}, {"room", s("r")},
                                  {"user", s("a")}, {"cmid", s("")}, {"body", s("b")}})),
            errc::bad_field);
  EXPECT_EQ(decode_code(pack_map({{"v", object(1)}, {"op", s("join")}, {"id", object(1)}, {"room", s("a\nb")},
                                  {"user", s("a")}})),
            errc::bad_field);
  EXPECT_EQ(decode_code(pack_map({{"v", object(1)}, {"op", s("history")}, {"id", object(1)}, {"room", s("r")},
                                  {"before", object(3)}, {"after", object(1)}})),
            errc::bad_field);
  EXPECT_EQ(decode_code(pack_map({{"v", object(1)}, {"v", object(1)}, {"op", s("ping")}, {"id", object(1)}})),
            errc::bad_frame);
  // call: a service name like a node's, a user, a UTF-8 body within max_body.
  const std::string long_name(65, 's');
  EXPECT_EQ(decode_code(pack_map({{"v", object(1)}, {"op", s("call")}, {"id", object(1)},
                                  {"service", object(std::string_view(long_name), z)}, {"user", s("a")}, {"body", s("b")}})),
            errc::too_large);
  EXPECT_EQ(decode_code(pack_map({{"v", object(1)}, {"op", s("call")}, {"id", object(1)}, {"service", s("bot")},
                                  {"user", s("a")}})),
            errc::bad_field);
  EXPECT_EQ(decode_code(pack_map({{"v", object(1)}, {"op", s("call")}, {"id", object(1)}, {"service", s("bot")},
                                  {"user", s("a")}, {"body", s("\xff")}})),
            errc::bad_utf8);
}

TEST(Codec, KeepsTheRequestIdOfARejectedRequest) {
  msgpack::zone z;
  auto d = decode_request(pack_map({{"v", msgpack::object(1)}, {"op", msgpack::object(std::string_view("nope"), z)},
                                    {"id", msgpack::object(77)}}),
                          Limits{});
  ASSERT_FALSE(d.body);
  EXPECT_EQ(d.id, 77u);
}

TEST(Codec, ArrayHeadersAreCappedByTheFrameLengthWhateverTheLimits) {
  // Found by tests/fuzz: generous limits (as for internal frames) must still not let a
  // short frame announce millions of elements.
  Limits generous;
  generous.max_array = std::size_t{1} << 24;
  generous.max_map = std::size_t{1} << 24;
  const std::string array_frame("\x81\xa1x\xdd\x00\xd0\x00\x06", 8);  // {"x": [13.6M elements...]}
  EXPECT_EQ(unpack_map(array_frame, generous).error().code, errc::too_large);
  const std::string map_frame("\xdf\x00\xd0\x00\x06", 5);
  EXPECT_EQ(unpack_map(map_frame, generous).error().code, errc::too_large);
  EXPECT_NE(unpack_map(map_frame, generous).error().message.find("can hold"), std::string::npos);
  // A short frame whose header is merely truncated is still reported as truncated.
  EXPECT_EQ(unpack_map(std::string("\x83\xa1v\x01"), generous).error().code, errc::bad_frame);
}

TEST(Codec, PublishBatchRoundTripsWithAResultPerItem) {
  Limits limits;
  PublishBatch batch{"general", "ann", {{"c1", "one"}, {"c2", "two \xF0\x9F\x98\x80"}, {"c3", ""}}};
  auto d = decode_request(encode_request({7, batch, "ann"}), limits);
  ASSERT_TRUE(d.body) << d.body.error().message;
  EXPECT_EQ(d.as, "ann");
  const auto& b = std::get<PublishBatch>(*d.body);
  EXPECT_EQ(b.room, "general");
  EXPECT_EQ(b.user, "ann");
  ASSERT_EQ(b.items.size(), 3u);
  EXPECT_EQ(b.items[1].client_msg_id, "c2");
  EXPECT_EQ(b.items[1].body, "two \xF0\x9F\x98\x80");
  EXPECT_EQ(std::string(op_name(*d.body)), "publish_batch");

  PublishBatchOk ok{"general", {{41, 1700000000000, false}, {7, 1600000000000, true},
                                {0, 0, false, errc::unavailable, "retry it"}}};
  auto r = decode_reply(encode_reply({7, ok}), limits);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(std::get<PublishBatchOk>(r->body).room, "general");
  EXPECT_EQ(std::get<PublishBatchOk>(r->body).results, ok.results);

  auto hello = decode_reply(encode_reply({1, HelloOk{1, "n1", {}, 65536, {}, {}, 1000}}), limits);
  ASSERT_TRUE(hello);
  EXPECT_EQ(std::get<HelloOk>(hello->body).max_batch, 1000u) << "hello says how many items a batch may carry";
}

TEST(Codec, ABadPublishBatchIsRefusedWholeNamingTheItem) {
  Limits limits;
  auto str = [](const char* text) { return msgpack::object(std::string_view(text)); };
  auto frame = [&](msgpack::object items) {
    return pack_map({{"v", msgpack::object(1)}, {"op", str("publish_batch")}, {"id", msgpack::object(3)},
                     {"room", str("r")}, {"user", str("u")}, {"items", items}});
  };
  msgpack::zone zone;
  auto items = [&](std::vector<std::vector<msgpack::object>> list) {
    std::vector<msgpack::object> outer;
    for (auto& inner : list) outer.emplace_back(inner, zone);
    return msgpack::object(outer, zone);
  };
  const std::string long_body(limits.max_body + 1, 'x'), long_cmid(limits.max_client_msg_id + 1, 'c');
  struct Case {
    std::string frame;
    errc code;
    std::string says;
  };
  for (const auto& c : std::vector<Case>{
           {frame(items({})), errc::bad_field, "1 to 1000"},
           {frame(str("not an array")), errc::bad_field, "'items'"},
           {frame(items({{str("c1")}})), errc::bad_field, "items[0] must be [cmid, body]"},
           {frame(items({{str("c1"), str("ok")}, {msgpack::object(5), str("x")}})),
            errc::bad_field, "items[1]"},
           {frame(items({{str(""), str("x")}})), errc::bad_field, "cmid must not be empty"},
           {frame(items({{str("c1"), msgpack::object(long_body.c_str())}})), errc::too_large,
            "items[0]: the body"},
           {frame(items({{msgpack::object(long_cmid.c_str()), str("x")}})), errc::too_large,
            "items[0]: the cmid"},
           {frame(items({{str("c1"), str("bad \xC3\x28")}})), errc::bad_utf8, "items[0]"},
       }) {
    auto d = decode_request(c.frame, limits);
    ASSERT_FALSE(d.body) << c.says;
    EXPECT_EQ(d.id, 3u) << "the reply can name the request";
    EXPECT_EQ(d.body.error().code, c.code) << c.says << ": " << d.body.error().message;
    EXPECT_NE(d.body.error().message.find(c.says), std::string::npos) << d.body.error().message;
  }
  Limits small = limits;
  small.max_publish_batch = 2;
  std::vector<std::vector<msgpack::object>> three(3, {str("c"), str("b")});
  auto d = decode_request(frame(items(three)), small);
  ASSERT_FALSE(d.body);
  EXPECT_EQ(d.body.error().code, errc::too_large);
}

TEST(Codec, AMessageMapIsWhatAHistoryPageHoldsAndThePublishedPayloadCarries) {
  const RoomMessage a{"general", 7, "ann", 1700000000000, "h\xc3\xa9llo", "c-7"};
  const RoomMessage b{"general", 8, "bob", 1700000000001, "", "c-8"};
  auto map = [](const RoomMessage& m) {
    return encode_message_map(m.room, m.seq, m.user, m.ts_ms, m.body, m.client_msg_id);
  };
  // The published payload: the map with v and op in front; decoded as before.
  auto event = decode_message(message_event(map(a)), Limits{});
  ASSERT_TRUE(event) << event.error().message;
  EXPECT_EQ(*event, a);
  EXPECT_EQ(message_event(map(a)), encode_message(a));
  // A page of stored maps is the same reply as one encoded message by message.
  const std::string spliced = encode_history_reply(42, 2, map(a) + map(b), true);
  EXPECT_EQ(spliced, encode_reply({42, HistoryOk{{a, b}, true}}));
  auto page = decode_reply(spliced, Limits{});
  ASSERT_TRUE(page) << page.error().message;
  EXPECT_EQ(std::get<HistoryOk>(page->body).messages, (std::vector<RoomMessage>{a, b}));
  EXPECT_TRUE(std::get<HistoryOk>(page->body).more);
  // And it reads back (the view points into the bytes: they must outlive it).
  const std::string stored = map(a);
  auto view = read_message_map(stored);
  ASSERT_TRUE(view);
  EXPECT_EQ(view->body, a.body);
  EXPECT_EQ(view->seq, 7u);
  EXPECT_FALSE(read_message_map(map(a) + "x")) << "exactly one map";
  EXPECT_FALSE(read_message_map(std::string("\x94\x01\x02\x03\x04", 5))) << "not a map";
}

TEST(Codec, AHistoryPageReadInPlaceHoldsWhatDecodeReplyGivesAndOutlivesItsFrame) {
  const RoomMessage a{"general", 7, "ann", 1700000000000, std::string(300, 'x'), "c-7"};
  const RoomMessage b{"general", 8, "bob", 1700000000001, "h\xc3\xa9llo", "c-8"};
  std::optional<HistoryPage> kept;
  {
    std::string frame = encode_reply({42, HistoryOk{{a, b}, true}});
    auto read = ReplyFrame::read(frame, Limits{});
    ASSERT_TRUE(read) << read.error().message;
    EXPECT_EQ(read->id(), 42u);
    auto page = read->history_page();
    ASSERT_TRUE(page) << page.error().message;
    kept = *page;
    frame.assign(frame.size(), '\0');  // the views are the page's own, not the frame's
  }
  ASSERT_EQ(kept->messages.size(), 2u);
  EXPECT_EQ(kept->messages[0].to_message(), a);
  EXPECT_EQ(kept->messages[1].to_message(), b);
  EXPECT_TRUE(kept->more);

  // An error reply is the page's error, with its code and message.
  const std::string error = encode_reply({43, ErrorReply{errc::no_such_room, "no room 'x'"}});
  auto refused = ReplyFrame::read(error, Limits{})->history_page();
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, errc::no_such_room);
  EXPECT_EQ(refused.error().message, "no room 'x'");
  // A reply of another op is not a page.
  const std::string other = encode_reply({44, LastSeqOk{"general", 8}});
  auto not_a_page = ReplyFrame::read(other, Limits{})->history_page();
  ASSERT_FALSE(not_a_page);
  EXPECT_EQ(not_a_page.error().code, errc::unknown_op);
  // Every field is checked as decode_reply checks it: a message with a user over the limit.
  const std::string bad = encode_reply(
      {45, HistoryOk{{RoomMessage{"general", 9, std::string(Limits{}.max_user + 1, 'u'), 1, "b", "c"}}, false}});
  auto refused_page = ReplyFrame::read(bad, Limits{})->history_page();
  auto refused_reply = decode_reply(bad, Limits{});
  ASSERT_FALSE(refused_page);
  ASSERT_FALSE(refused_reply);
  EXPECT_EQ(refused_page.error().code, refused_reply.error().code);
  EXPECT_EQ(refused_page.error().message, refused_reply.error().message);
  // A body over the limit, likewise.
  Limits small;
  small.max_body = 100;
  const std::string long_frame = encode_reply({46, HistoryOk{{a}, false}});
  auto too_long = ReplyFrame::read(long_frame, small);  // the frame outlives the ReplyFrame
  ASSERT_TRUE(too_long);
  auto long_page = too_long->history_page();
  ASSERT_FALSE(long_page);
  EXPECT_EQ(long_page.error().code, errc::too_large);
}

TEST(Codec, MarkReadAndRoomSummariesRoundTrip) {
  Limits limits;
  auto asked = decode_request(encode_request({1, MarkRead{"general", "ann", 42}}), limits);
  ASSERT_TRUE(asked.body) << asked.body.error().message;
  const auto& m = std::get<MarkRead>(*asked.body);
  EXPECT_EQ(m.room, "general");
  EXPECT_EQ(m.user, "ann");
  EXPECT_EQ(m.seq, 42u);
  auto ok = decode_reply(encode_reply({2, MarkReadOk{"general", 42, 3}}), limits);
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(std::get<MarkReadOk>(ok->body).seq, 42u);
  EXPECT_EQ(std::get<MarkReadOk>(ok->body).unread, 3u);

  RoomsOk rooms{{"a", "b"}, {"n3"}, {{"b", Role::owner, 9, 1700000000000, "bob", "h\xc3\xa9", 4, 5, 1, true},
                                     {"a", Role::reader, 0, 1600000000000, "", "", 0, 0}}};
  auto back = decode_reply(encode_reply({3, rooms}), limits);
  ASSERT_TRUE(back) << back.error().message;
  const auto& r = std::get<RoomsOk>(back->body);
  EXPECT_EQ(r.rooms, rooms.rooms);
  EXPECT_EQ(r.missing, rooms.missing);
  EXPECT_EQ(r.summaries, rooms.summaries);
  EXPECT_TRUE(r.summaries[0].private_room);
  EXPECT_FALSE(r.summaries[1].private_room);

  // Bad input: a seq that is not an unsigned integer, a missing one, a user that is no name.
  using msgpack::object;
  msgpack::zone z;
  auto s = [&](const char* v) { return object(std::string_view(v), z); };
  EXPECT_EQ(decode_code(pack_map({{"v", object(1)}, {"op", s("mark_read")}, {"id", object(1)}, {"room", s("r")},
                                  {"user", s("a")}, {"seq", object(-1)}})),
            errc::bad_field);
  EXPECT_EQ(decode_code(pack_map({{"v", object(1)}, {"op", s("mark_read")}, {"id", object(1)}, {"room", s("r")},
                                  {"user", s("a")}})),
            errc::bad_field);
  EXPECT_EQ(decode_code(pack_map({{"v", object(1)}, {"op", s("mark_read")}, {"id", object(1)}, {"room", s("r")},
                                  {"user", s("")}, {"seq", object(1)}})),
            errc::bad_field);
}

TEST(Codec, AReadEventRoundTripsAndItsTopicIsNoRoomsAndNoOtherUsers) {
  const ReadEvent e{ReadEvent::Kind::read, "n1", "general", "ann", 42};
  auto back = decode_read_event(encode_read_event(e), Limits{});
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, e);
  EXPECT_EQ(read_topic("ann"), std::string("\0read:ann\0", 10));
  EXPECT_TRUE(is_read_topic(read_topic("ann")));
  EXPECT_FALSE(is_read_topic(room_topic("general")));
  EXPECT_FALSE(is_read_topic(heads_topic()));
  // One user's topic is no prefix of another's (PUB/SUB match by prefix).
  EXPECT_NE(read_topic("anna").rfind(read_topic("ann"), 0), 0u);
  EXPECT_FALSE(decode_read_event(encode_heads({"n1", 1, {}}), Limits{})) << "another event";
  EXPECT_FALSE(decode_read_event(encode_read_event({ReadEvent::Kind::read, "n1", "", "ann", 1}), Limits{})) << "no room";
  // A kick names its room; a disconnect only its user.
  for (const ReadEvent& other : {ReadEvent{ReadEvent::Kind::kicked, "n1", "general", "ann", 0},
                                 ReadEvent{ReadEvent::Kind::disconnect, "n1", "", "ann", 0},
                                 ReadEvent{ReadEvent::Kind::left, "n1", "den", "ann", 0}}) {
    auto read = decode_read_event(encode_read_event(other), Limits{});
    ASSERT_TRUE(read) << read.error().message;
    EXPECT_EQ(*read, other);
  }
}

TEST(Codec, KickAndDisconnectRoundTrip) {
  Limits limits;
  auto kick = decode_request(encode_request({1, Kick{"general", "bob"}}), limits);
  ASSERT_TRUE(kick.body) << kick.body.error().message;
  EXPECT_EQ(std::get<Kick>(*kick.body).user, "bob");
  auto gone = decode_request(encode_request({2, Disconnect{"bob"}}), limits);
  ASSERT_TRUE(gone.body) << gone.body.error().message;
  EXPECT_EQ(std::get<Disconnect>(*gone.body).user, "bob");
  auto kicked = decode_reply(encode_reply({3, KickOk{true}}), limits);
  ASSERT_TRUE(kicked);
  EXPECT_TRUE(std::get<KickOk>(kicked->body).removed);
  auto done = decode_reply(encode_reply({4, DisconnectOk{}}), limits);
  ASSERT_TRUE(done);
  EXPECT_TRUE(std::holds_alternative<DisconnectOk>(done->body));
}

TEST(Codec, MentionsRideInPublishesBatchItemsMessagesAndSummaries) {
  Limits limits;
  Publish p{"general", "ann", "c1", "hi @bob @cat", {"bob", "cat", "bob"}};
  auto asked = decode_request(encode_request({1, p}), limits);
  ASSERT_TRUE(asked.body) << asked.body.error().message;
  EXPECT_EQ(std::get<Publish>(*asked.body).mentions, (std::vector<std::string>{"bob", "cat"})) << "each once";
  PublishBatch b{"general", "ann", {{"c1", "plain"}, {"c2", "hi @bob", {"bob"}}}};
  asked = decode_request(encode_request({2, b}), limits);
  ASSERT_TRUE(asked.body) << asked.body.error().message;
  const auto& items = std::get<PublishBatch>(*asked.body).items;
  ASSERT_EQ(items.size(), 2u);
  EXPECT_TRUE(items[0].mentions.empty());
  EXPECT_EQ(items[1].mentions, (std::vector<std::string>{"bob"}));

  // The message map carries them: history, the publish endpoint, read in place.
  RoomMessage m{"general", 7, "ann", 1700000000000, "hi @bob", "c2", {"bob"}};
  auto event = decode_message(encode_message(m), limits);
  ASSERT_TRUE(event) << event.error().message;
  EXPECT_EQ(*event, m);
  RoomMessage plain{"general", 8, "ann", 1700000000001, "plain", "c3"};
  auto plain_event = decode_message(encode_message(plain), limits);
  ASSERT_TRUE(plain_event);
  EXPECT_EQ(*plain_event, plain);
  auto history = decode_reply(encode_reply({3, HistoryOk{{m, plain}, false}}), limits);
  ASSERT_TRUE(history) << history.error().message;
  EXPECT_EQ(std::get<HistoryOk>(history->body).messages, (std::vector<RoomMessage>{m, plain}));
  auto frame = std::make_unique<std::string>(encode_reply({4, HistoryOk{{m, plain}, false}}));
  auto reply = ReplyFrame::read(*frame, limits);
  ASSERT_TRUE(reply);
  auto page = reply->history_page();
  ASSERT_TRUE(page);
  frame.reset();
  ASSERT_EQ(page->messages.size(), 2u);
  EXPECT_EQ(page->messages[0].to_message(), m) << "the views outlive the frame";
  const std::string map_bytes = switchboard::encode_message_map("r", 1, "ann", 5, "b", "c", m.mentions);
  auto map = switchboard::read_message_map(map_bytes);  // views into map_bytes
  ASSERT_TRUE(map);
  EXPECT_EQ(map->mentions, (std::vector<std::string_view>{"bob"}));

  RoomsOk rooms{{"b"}, {}, {{"b", Role::member, 9, 1700000000000, "bob", "hey", 4, 5, 2}}};
  auto back = decode_reply(encode_reply({5, rooms}), limits);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(std::get<RoomsOk>(back->body).summaries[0].mentions, 2u);

  // Bad input: too many (too_large), a name that is no name, a list that is no array.
  Limits few;
  few.max_mentions = 2;
  auto many = decode_request(encode_request({6, Publish{"r", "ann", "c", "b", {"x", "y", "z"}}}), few);
  ASSERT_FALSE(many.body);
  EXPECT_EQ(many.body.error().code, errc::too_large);
  EXPECT_NE(many.body.error().message.find("max_mentions"), std::string::npos) << many.body.error().message;
  auto many_items = decode_request(encode_request({7, PublishBatch{"r", "ann", {{"c", "b", {"x", "y", "z"}}}}}), few);
  ASSERT_FALSE(many_items.body);
  EXPECT_EQ(many_items.body.error().code, errc::too_large);
  EXPECT_NE(many_items.body.error().message.find("items[0]: mentions"), std::string::npos);
  using msgpack::object;
  msgpack::zone z;
  auto s = [&](const char* v) { return object(std::string_view(v), z); };
  auto publish_with = [&](object mentions) {
    return pack_map({{"v", object(1)}, {"op", s("publish")}, {"id", object(1)}, {"room", s("r")}, {"user", s("a")},
                     {"cmid", s("c")}, {"body", s("b")}, {"mentions", mentions}});
  };
  EXPECT_EQ(decode_code(publish_with(s("bob"))), errc::bad_field) << "not an array";
  std::vector<std::string> control{"bo\x01"};
  EXPECT_EQ(decode_code(publish_with(object(control, z))), errc::bad_field) << "not a name";
  std::vector<std::string> empty_name{""};
  EXPECT_EQ(decode_code(publish_with(object(empty_name, z))), errc::bad_field);
}

TEST(Codec, ARoomListPageRoundTripsAndItsCursorIsBothFieldsOrNeither) {
  Limits limits;
  ListRooms asked{"ann", 25, SummaryCursor{1700000000000, "general"}};
  auto back = decode_request(encode_request({1, asked}), limits);
  ASSERT_TRUE(back.body) << back.body.error().message;
  const auto& r = std::get<ListRooms>(*back.body);
  EXPECT_EQ(r.user, asked.user);
  EXPECT_EQ(r.limit, 25u);
  EXPECT_EQ(r.after, asked.after);
  RoomsOk page{{"general"}, {}, {{"general", Role::member, 1, 2, "ann", "x", 0, 1, 0}}, true};
  auto reply = decode_reply(encode_reply({2, page}), limits);
  ASSERT_TRUE(reply) << reply.error().message;
  EXPECT_TRUE(std::get<RoomsOk>(reply->body).more);
  using msgpack::object;
  msgpack::zone z;
  auto s = [&](const char* v) { return object(std::string_view(v), z); };
  EXPECT_EQ(decode_code(pack_map({{"v", object(1)}, {"op", s("rooms")}, {"id", object(1)}, {"user", s("ann")},
                                  {"after_ts", object(5)}})),
            errc::bad_field)
      << "a cursor of one field";
}

TEST(Codec, ReadReceiptsRoundTrip) {
  Limits limits;
  auto set = decode_request(encode_request({1, SetReceipts{"general", true}}), limits);
  ASSERT_TRUE(set.body) << set.body.error().message;
  EXPECT_EQ(std::get<SetReceipts>(*set.body).room, "general");
  EXPECT_TRUE(std::get<SetReceipts>(*set.body).receipts);
  auto ask = decode_request(encode_request({2, ReadMarkers{"general"}}), limits);
  ASSERT_TRUE(ask.body) << ask.body.error().message;
  EXPECT_EQ(std::get<ReadMarkers>(*ask.body).room, "general");
  auto changed = decode_reply(encode_reply({3, SetReceiptsOk{true}}), limits);
  ASSERT_TRUE(changed);
  EXPECT_TRUE(std::get<SetReceiptsOk>(changed->body).changed);
  ReadMarkersOk markers{"general", {{"ann", 7}, {"bob", 0}}};
  auto back = decode_reply(encode_reply({4, markers}), limits);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(std::get<ReadMarkersOk>(back->body).room, "general");
  EXPECT_EQ(std::get<ReadMarkersOk>(back->body).markers, markers.markers);
  using msgpack::object;
  msgpack::zone z;
  auto s = [&](const char* v) { return object(std::string_view(v), z); };
  EXPECT_EQ(decode_code(pack_map({{"v", object(1)}, {"op", s("set_receipts")}, {"id", object(1)}, {"room", s("r")},
                                  {"receipts", s("yes")}})),
            errc::bad_field);
}

TEST(Codec, BackupRequestsAndChunksRoundTrip) {
  Limits limits;
  auto begin = decode_request(encode_request({1, Backup{}}), limits);
  ASSERT_TRUE(begin.body) << begin.body.error().message;
  EXPECT_FALSE(std::get<Backup>(*begin.body).backup);
  auto next = decode_request(encode_request({2, Backup{77, 1 << 20}}), limits);
  ASSERT_TRUE(next.body) << next.body.error().message;
  EXPECT_EQ(std::get<Backup>(*next.body).backup, 77u);
  EXPECT_EQ(std::get<Backup>(*next.body).offset, 1u << 20);
  BackupOk chunk{77, 1 << 20, std::string("\0\1binary\xff", 10), true, 4 << 20};
  auto back = decode_reply(encode_reply({3, chunk}), limits);
  ASSERT_TRUE(back) << back.error().message;
  const auto& got = std::get<BackupOk>(back->body);
  EXPECT_EQ(got.backup, 77u);
  EXPECT_EQ(got.offset, 1u << 20);
  EXPECT_EQ(got.data, chunk.data);
  EXPECT_TRUE(got.done);
  EXPECT_EQ(got.estimate, 4u << 20);
  using msgpack::object;
  msgpack::zone z;
  auto s = [&](const char* v) { return object(std::string_view(v), z); };
  EXPECT_EQ(decode_code(pack_map({{"v", object(1)}, {"op", s("backup")}, {"id", object(1)}, {"backup", object(0)},
                                  {"offset", object(0)}})),
            errc::bad_field)
      << "0 is no backup's id";
  EXPECT_EQ(decode_code(pack_map({{"v", object(1)}, {"op", s("backup")}, {"id", object(1)}, {"offset", object(5)}})),
            errc::bad_field)
      << "an offset without the backup it is of";
  EXPECT_EQ(decode_code(pack_map({{"v", object(1)}, {"op", s("backup")}, {"id", object(1)}, {"backup", object(3)}})),
            errc::bad_field)
      << "a backup's next chunk names its offset";
}

TEST(Codec, RetentionTrimAndImportRoundTripAndBadItemsAreNamed) {
  Limits limits;
  auto set = decode_request(encode_request({1, SetRetention{"news", 86400, std::nullopt, true}}), limits);
  ASSERT_TRUE(set.body) << set.body.error().message;
  const auto& r = std::get<SetRetention>(*set.body);
  EXPECT_EQ(r.room, "news");
  EXPECT_EQ(r.max_age_s, 86400u);
  EXPECT_FALSE(r.max_messages);
  EXPECT_EQ(r.legal_hold, true);
  auto read = decode_request(encode_request({2, SetRetention{"news"}}), limits);
  ASSERT_TRUE(read.body);
  EXPECT_FALSE(std::get<SetRetention>(*read.body).max_age_s || std::get<SetRetention>(*read.body).legal_hold);
  SetRetentionOk ok{"news", 86400, 0, true, 86400, 500, 42};
  auto back = decode_reply(encode_reply({3, ok}), limits);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(std::get<SetRetentionOk>(back->body), ok);
  auto trim = decode_request(encode_request({4, TrimHistory{"news", 99}}), limits);
  ASSERT_TRUE(trim.body);
  EXPECT_EQ(std::get<TrimHistory>(*trim.body).before, 99u);
  auto trimmed = decode_reply(encode_reply({5, TrimHistoryOk{"news", 99}}), limits);
  ASSERT_TRUE(trimmed);
  EXPECT_EQ(std::get<TrimHistoryOk>(trimmed->body).first_seq, 99u);

  ImportBatch batch{"copy", 11, {{"ann", 1000, "c-1", "hi"}, {"bob", 1001, "c-2", "hey @ann", {"ann"}}}};
  auto imported = decode_request(encode_request({6, batch}), limits);
  ASSERT_TRUE(imported.body) << imported.body.error().message;
  EXPECT_EQ(std::get<ImportBatch>(*imported.body).first_seq, 11u);
  EXPECT_EQ(std::get<ImportBatch>(*imported.body).items, batch.items);
  auto done = decode_reply(encode_reply({7, ImportBatchOk{"copy", 11, 12}}), limits);
  ASSERT_TRUE(done);
  EXPECT_EQ(std::get<ImportBatchOk>(done->body).last_seq, 12u);

  // A truncated history page says where the room starts; a whole one says nothing.
  auto page = decode_reply(encode_reply({8, HistoryOk{{}, false, 51}}), limits);
  ASSERT_TRUE(page);
  EXPECT_EQ(std::get<HistoryOk>(page->body).first_seq, 51u);
  auto spliced = decode_reply(encode_history_reply(9, 0, "", false, 51), limits);
  ASSERT_TRUE(spliced) << spliced.error().message;
  EXPECT_EQ(std::get<HistoryOk>(spliced->body).first_seq, 51u);
  auto whole = decode_reply(encode_reply({10, HistoryOk{}}), limits);
  ASSERT_TRUE(whole);
  EXPECT_EQ(std::get<HistoryOk>(whole->body).first_seq, 0u);

  using msgpack::object;
  msgpack::zone z;
  auto s = [&](const char* v) { return object(std::string_view(v), z); };
  std::vector<object> bad_item = {s("ann"), s("not a time"), s("c-1"), s("hi")};
  EXPECT_EQ(decode_code(pack_map({{"v", object(1)}, {"op", s("import_batch")}, {"id", object(1)}, {"room", s("r")},
                                  {"first_seq", object(1)},
                                  {"items", object(std::vector<object>{object(bad_item, z)}, z)}})),
            errc::bad_field);
  EXPECT_EQ(decode_code(pack_map({{"v", object(1)}, {"op", s("import_batch")}, {"id", object(1)}, {"room", s("r")},
                                  {"first_seq", object(0)}, {"items", object(std::vector<object>{}, z)}})),
            errc::bad_field)
      << "seqs start at 1";
  EXPECT_EQ(decode_code(pack_map({{"v", object(1)}, {"op", s("set_retention")}, {"id", object(1)}, {"room", s("r")},
                                  {"max_age_s", object(-5)}})),
            errc::bad_field)
      << "a negative age";
}

TEST(Codec, PresenceStatusReplyCarriesLastSeenOnlyWhenKnownAndReadsRepliesWithout) {
  Limits limits;
  for (const UserStatusOk& sent : {UserStatusOk{"ann", false, Availability::online, "", 1763900000123},
                                   UserStatusOk{"ann", true, Availability::busy, "call"},
                                   UserStatusOk{"bob", false, Availability::online, ""}}) {
    const std::string frame = encode_presence_reply({4, sent});
    auto back = decode_presence_reply(frame, limits);
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_EQ(back->id, 4u);
    EXPECT_EQ(std::get<UserStatusOk>(back->body), sent);
    auto map = unpack_map(frame, limits);
    ASSERT_TRUE(map);
    EXPECT_EQ(FieldReader(map->root()).find("last_seen") != nullptr, sent.last_seen.has_value())
        << "the key is there only when the node knows it";
  }
  // A node from before last_seen: its reply reads as "not known".
  using msgpack::object;
  msgpack::zone z;
  auto s = [&](const char* v) { return object(std::string_view(v), z); };
  auto old = decode_presence_reply(pack_map({{"v", object(1)}, {"op", s("status")}, {"id", object(5)},
                                             {"user", s("ann")}, {"online", object(false)}, {"status", s("online")},
                                             {"text", s("")}}),
                                   limits);
  ASSERT_TRUE(old) << old.error().message;
  EXPECT_EQ(std::get<UserStatusOk>(old->body).last_seen, std::nullopt);
  auto bad = decode_presence_reply(pack_map({{"v", object(1)}, {"op", s("status")}, {"id", object(5)},
                                             {"user", s("ann")}, {"online", object(false)}, {"status", s("online")},
                                             {"text", s("")}, {"last_seen", s("yesterday")}}),
                                   limits);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, errc::bad_field);
}

TEST(Codec, SetNotifyRoundTripsAndRefusesAnUnknownLevel) {
  Limits limits;
  for (auto level : {NotifyLevel::all, NotifyLevel::mentions, NotifyLevel::none, NotifyLevel::room_default}) {
    auto set = decode_request(encode_request({1, SetNotify{"general", "bob", level}}), limits);
    ASSERT_TRUE(set.body) << set.body.error().message;
    EXPECT_EQ(std::get<SetNotify>(*set.body).user, "bob");
    EXPECT_EQ(std::get<SetNotify>(*set.body).level, level);
  }
  auto ok = decode_reply(encode_reply({2, SetNotifyOk{"general", NotifyLevel::room_default, NotifyLevel::mentions}}),
                         limits);
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(std::get<SetNotifyOk>(ok->body).level, NotifyLevel::room_default);
  EXPECT_EQ(std::get<SetNotifyOk>(ok->body).effective, NotifyLevel::mentions);
  using msgpack::object;
  msgpack::zone z;
  auto s = [&](const char* v) { return object(std::string_view(v), z); };
  EXPECT_EQ(decode_code(pack_map({{"v", object(1)}, {"op", s("set_notify")}, {"id", object(1)}, {"room", s("r")},
                                  {"user", s("bob")}, {"level", s("loud")}})),
            errc::bad_field);
  EXPECT_EQ(notify_level_name(NotifyLevel::room_default), "default");
}
