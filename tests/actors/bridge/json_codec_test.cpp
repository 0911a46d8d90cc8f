// The WebSocket bridge's reading of client requests and writing of replies
// (actors/bridge/client_request.hpp, actors/bridge/json_codec.hpp), as pure functions:
// a client's JSON or msgpack request becomes the node's typed request, with the error
// the node would give for a bad field; a typed reply becomes the JSON a client reads,
// the same as the node's msgpack reply read by any JSON library.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "switchboard/actors/bridge/client_request.hpp"
#include "switchboard/actors/bridge/json_codec.hpp"
#include "switchboard/transport/codec.hpp"

using namespace switchboard;
using namespace switchboard::actors::bridge;
using json = nlohmann::json;

namespace {

const transport::Limits kLimits;
const Caller kAnn{"ann", "s-ann"};

/// A client frame read, or the test fails.
ClientFrame frame_of(const std::string& data, bool binary, std::string& scratch) {
  auto read = read_client_frame(binary, data, kLimits, scratch);
  if (auto* e = std::get_if<FrameError>(&read)) {
    ADD_FAILURE() << "refused: " << e->code << ": " << e->message;
    return {};
  }
  return std::move(std::get<ClientFrame>(read));
}

/// The client request `request` (a JSON object) read as the bridge reads it, for ann.
Result<NodeRequest> read(const json& request, bool binary = false) {
  std::string scratch;
  std::string data;
  if (binary) json::to_msgpack(request, data);
  else data = request.dump();
  ClientFrame frame = frame_of(data, binary, scratch);
  const ClientOp* op = find_client_op(request.at("op").get<std::string>());
  if (op == nullptr || op->read == nullptr) return make_error(errc::unknown_op, "not an op the node answers");
  transport::FieldReader fields(frame.root());
  return op->read(fields, kLimits, kAnn);
}

FrameError refusal(std::string_view data, bool binary) {
  std::string scratch;
  auto read = read_client_frame(binary, data, kLimits, scratch);
  if (auto* e = std::get_if<FrameError>(&read)) return *e;
  ADD_FAILURE() << "read: " << data;
  return {};
}

/// The node's frame for a request: what the bridge sends (encode_request), with id 7 and
/// `as` ann.
std::string node_frame(const NodeRequest& r) {
  if (auto* chat = std::get_if<transport::RequestBody>(&r)) return transport::encode_request({7, *chat, "ann"});
  return transport::encode_presence_request({7, std::get<transport::PresenceRequestBody>(r), "ann"});
}

/// What the node itself says of `request` when the bridge forwards the client's fields
/// as they are (the bridge before typed requests): a copy of the client's object with
/// the envelope and the connection's identity. Its error, or ok.
Error node_verdict(json request, bool presence = false, bool with_user = false, bool with_session = false) {
  request["v"] = 1;
  request["id"] = 7;
  request["as"] = "ann";
  if (with_user) request["user"] = "ann";
  if (with_session) request["session"] = "s-ann";
  std::string frame;
  json::to_msgpack(request, frame);
  if (presence) {
    auto d = transport::decode_presence_request(frame, kLimits);
    return d.body ? Error{errc::ok, ""} : d.body.error();
  }
  auto d = transport::decode_request(frame, kLimits);
  return d.body ? Error{errc::ok, ""} : d.body.error();
}

/// The JSON a client reads for a reply the node sends: the node's msgpack read by a JSON
/// library (the bridge before typed replies did exactly this).
json as_client_reads(const std::string& msgpack) { return json::from_msgpack(msgpack); }

}  // namespace

// ---- frames ------------------------------------------------------------------------

TEST(BridgeClientFrame, ReadsATextFrameAsTheMapABinaryFrameCarries) {
  const json request = {{"op", "publish"}, {"id", 42}, {"room", "general"}, {"cmid", "c1"}, {"body", "héllo ✓"}};
  std::string scratch_text, scratch_binary, binary;
  json::to_msgpack(request, binary);
  ClientFrame text = frame_of(request.dump(), false, scratch_text);
  ClientFrame bin = frame_of(binary, true, scratch_binary);
  EXPECT_EQ(text.id, 42u);
  EXPECT_EQ(bin.id, 42u);
  for (const char* key : {"op", "room", "cmid", "body"}) {
    const auto* t = transport::FieldReader(text.root()).find(key);
    const auto* b = transport::FieldReader(bin.root()).find(key);
    ASSERT_TRUE(t && b) << key;
    EXPECT_TRUE(t->is(MsgpackType::str)) << key;
    EXPECT_EQ(t->view(), b->view()) << key;
  }
}

TEST(BridgeClientFrame, JsonValuesKeepTheirTypes) {
  std::string out;
  ASSERT_TRUE(json_to_msgpack(R"({"s":"x\n\u00e9","u":18446744073709551615,"n":-5,"f":1.5,"t":true,"z":null,)"
                              R"("a":[1,[2,{}]],"o":{"k":"v"},"big":18446744073709551616,"neg0":-0})",
                              8, out));
  // A JSON library reads the msgpack back as the same document.
  const json back = json::from_msgpack(out);
  EXPECT_EQ(back["s"], "x\n\u00e9");
  EXPECT_EQ(back["u"].get<std::uint64_t>(), 18446744073709551615ull);
  EXPECT_EQ(back["n"].get<std::int64_t>(), -5);
  EXPECT_EQ(back["f"].get<double>(), 1.5);
  EXPECT_EQ(back["t"], true);
  EXPECT_TRUE(back["z"].is_null());
  EXPECT_EQ(back["a"], json::parse("[1,[2,{}]]"));
  EXPECT_EQ(back["o"], json::parse(R"({"k":"v"})"));
  auto reader = transport::unpack_value(out, [] {
    transport::Limits l;
    l.max_depth = 9;
    return l;
  }());
  ASSERT_TRUE(reader);
  transport::FieldReader f(reader->root());
  EXPECT_EQ(f.find("u")->type, MsgpackType::positive_integer);
  EXPECT_EQ(f.find("n")->type, MsgpackType::negative_integer);
  EXPECT_EQ(f.find("f")->type, MsgpackType::float64);
  EXPECT_EQ(f.find("big")->type, MsgpackType::float64);  // beyond any integer: a float, as JSON readers have it
}

TEST(BridgeClientFrame, AKeyGivenTwiceKeepsItsLastValueAsAJsonObjectDoes) {
  // Binary frames with a key twice are refused (bad_frame); a JSON object keeps the last.
  std::string scratch;
  ClientFrame f = frame_of(R"({"op":"publish","id":1,"room":"a","body":"first","room":"b","body":"second"})", false,
                           scratch);
  transport::FieldReader fields(f.root());
  EXPECT_EQ(f.root().size, 4u);
  EXPECT_EQ(fields.find("room")->view(), "b");
  EXPECT_EQ(fields.find("body")->view(), "second");
  EXPECT_EQ(fields.find("op")->view(), "publish");
  // Nested objects are not the request's fields: they stay as they are.
  ClientFrame g = frame_of(R"({"id":2,"id":3,"x":{"k":1,"k":2}})", false, scratch);
  EXPECT_EQ(g.id, 3u);
}

TEST(BridgeClientFrame, TextNestedDeeperThanTheLimitIsTooLargeAndCloses) {
  // As the protocol test sends it: ten arrays deep.
  auto e = refusal(R"({"a": [[[[[[[[[[1]]]]]]]]]]})", false);
  EXPECT_EQ(e.code, "too_large");
  EXPECT_EQ(e.id, 0u);
  EXPECT_EQ(e.message, "nesting deeper than 8");
  ASSERT_NE(e.close_reason, nullptr);
  EXPECT_STREQ(e.close_reason, "nesting too deep");
  // Too deep wins over not being an object.
  EXPECT_EQ(refusal("[[[[[[[[[[1]]]]]]]]]]", false).code, "too_large");
  // Eight containers deep, a value inside: within the limit.
  std::string scratch;
  EXPECT_EQ(frame_of(R"({"id":1,"a":[[[[[[[1]]]]]]]})", false, scratch).id, 1u);
}

TEST(BridgeClientFrame, WhatIsNotOneObjectIsABadFrameAndCloses) {
  for (const char* text : {"not json", "[1, 2]", "{\"op\": ", "\"text\"", "5", "", "{} {}", "{\"id\":1} x",
                           "{\"id\":1,\"s\":\"\\ud800\"}", "{\"id\":1,\"s\":\"\xff\"}"}) {
    auto e = refusal(text, false);
    EXPECT_EQ(e.code, "bad_frame") << text;
    EXPECT_EQ(e.id, 0u) << text;
    EXPECT_EQ(e.message, "a text frame holds one JSON object") << text;
    EXPECT_NE(e.close_reason, nullptr) << text;
  }
  for (std::string_view bin : {std::string_view("\xc1\x00garbage", 9), std::string_view("\x92\x01\x02", 3),
                               std::string_view("\x82\xa1" "a\x01\xa1" "a\x02", 8)}) {
    auto e = refusal(bin, true);
    EXPECT_EQ(e.code, "bad_frame");
    EXPECT_EQ(e.id, 0u);
    EXPECT_NE(e.close_reason, nullptr);
  }
}

TEST(BridgeClientFrame, AMissingOrNonIntegerIdIsABadFieldWithIdZero) {
  for (const char* text : {R"({"op":"ping"})", R"({"op":"ping","id":1.5})", R"({"op":"ping","id":-1})",
                           R"({"op":"ping","id":"1"})", R"({"op":"ping","id":null})"}) {
    auto e = refusal(text, false);
    EXPECT_EQ(e.code, "bad_field") << text;
    EXPECT_EQ(e.id, 0u) << text;
    EXPECT_EQ(e.message, "field 'id' must be an unsigned integer") << text;
    EXPECT_EQ(e.close_reason, nullptr) << text << ": the connection stays";
  }
}

// ---- requests, op by op --------------------------------------------------------------

TEST(BridgeClientRequest, EveryOpOfTheBridgeIsKnownAndTheNodesOthersAreNot) {
  for (const char* op : {"auth", "ping", "subscribe", "unsubscribe", "create_room", "join", "leave", "add_member",
                         "remove_member", "ban", "unban", "set_role", "delete_room", "members", "rooms", "publish", "history",
                         "last_seq", "who", "status", "typing", "set_status"})
    EXPECT_NE(find_client_op(op), nullptr) << op;
  for (const char* op : {"hello", "shards", "call", "publish_batch", "session_open", "heartbeat", "session_close",
                         "dance", "", "PUBLISH"})
    EXPECT_EQ(find_client_op(op), nullptr) << op;
  EXPECT_EQ(find_client_op("publish")->rate, ClientOp::Rate::publish);
  EXPECT_EQ(find_client_op("typing")->rate, ClientOp::Rate::typing);
  EXPECT_TRUE(find_client_op("typing")->needs_session);
  EXPECT_TRUE(find_client_op("set_status")->needs_session);
  EXPECT_EQ(find_client_op("who")->handler, ClientOp::Handler::presence);
  EXPECT_EQ(find_client_op("history")->handler, ClientOp::Handler::chat);
}

TEST(BridgeClientRequest, EveryOpReadsIntoTheNodesRequestForTheConnectionsUser) {
  using namespace transport;
  struct Case {
    json request;
    NodeRequest expected;
  };
  const std::vector<Case> cases = {
      {{{"op", "create_room"}, {"id", 1}, {"room", "r"}}, RequestBody{CreateRoom{"r", "ann", false}}},
      {{{"op", "create_room"}, {"id", 1}, {"room", "r"}, {"private", true}, {"user", "mallory"}},
       RequestBody{CreateRoom{"r", "ann", true}}},
      {{{"op", "join"}, {"id", 1}, {"room", "r"}, {"user", "mallory"}, {"invited", true}},
       RequestBody{Join{"r", "ann", false}}},
      {{{"op", "leave"}, {"id", 1}, {"room", "r"}}, RequestBody{Leave{"r", "ann"}}},
      {{{"op", "add_member"}, {"id", 1}, {"room", "r"}, {"user", "bob"}}, RequestBody{AddMember{"r", "bob", Role::member}}},
      {{{"op", "add_member"}, {"id", 1}, {"room", "r"}, {"user", "bob"}, {"role", "reader"}},
       RequestBody{AddMember{"r", "bob", Role::reader}}},
      {{{"op", "remove_member"}, {"id", 1}, {"room", "r"}, {"user", "bob"}}, RequestBody{RemoveMember{"r", "bob"}}},
      {{{"op", "ban"}, {"id", 1}, {"room", "r"}, {"user", "bob"}}, RequestBody{Ban{"r", "bob"}}},
      {{{"op", "unban"}, {"id", 1}, {"room", "r"}, {"user", "bob"}}, RequestBody{Unban{"r", "bob"}}},
      {{{"op", "set_role"}, {"id", 1}, {"room", "r"}, {"user", "bob"}, {"role", "owner"}},
       RequestBody{SetRole{"r", "bob", Role::owner}}},
      {{{"op", "delete_room"}, {"id", 1}, {"room", "r"}}, RequestBody{DeleteRoom{"r"}}},
      {{{"op", "members"}, {"id", 1}, {"room", "r"}}, RequestBody{Members{"r"}}},
      {{{"op", "rooms"}, {"id", 1}}, RequestBody{ListRooms{}}},
      {{{"op", "rooms"}, {"id", 1}, {"user", "bob"}}, RequestBody{ListRooms{}}},
      {{{"op", "rooms"}, {"id", 1}, {"mine", true}}, RequestBody{ListRooms{"ann"}}},
      {{{"op", "rooms"}, {"id", 1}, {"mine", "yes"}}, RequestBody{ListRooms{}}},
      {{{"op", "publish"}, {"id", 1}, {"room", "r"}, {"cmid", "c1"}, {"body", "hi \"you\"\n"}, {"user", "mallory"}},
       RequestBody{Publish{"r", "ann", "c1", "hi \"you\"\n"}}},
      {{{"op", "history"}, {"id", 1}, {"room", "r"}}, RequestBody{History{"r", 0, {}, {}}}},
      {{{"op", "history"}, {"id", 1}, {"room", "r"}, {"limit", 10}, {"before", 21}},
       RequestBody{History{"r", 10, 21, {}}}},
      {{{"op", "history"}, {"id", 1}, {"room", "r"}, {"after", 0}, {"before", nullptr}},
       RequestBody{History{"r", 0, {}, 0}}},
      {{{"op", "last_seq"}, {"id", 1}, {"room", "r"}}, RequestBody{LastSeq{"r"}}},
      {{{"op", "who"}, {"id", 1}, {"room", "r"}}, PresenceRequestBody{Who{"r"}}},
      {{{"op", "status"}, {"id", 1}, {"user", "bob"}}, PresenceRequestBody{UserStatus{"bob"}}},
      {{{"op", "typing"}, {"id", 1}, {"room", "r"}, {"session", "not-mine"}},
       PresenceRequestBody{Typing{"s-ann", "r"}}},
      {{{"op", "set_status"}, {"id", 1}, {"status", "away"}, {"text", "lunch"}},
       PresenceRequestBody{SetStatus{"s-ann", Availability::away, "lunch"}}},
  };
  for (const auto& c : cases)
    for (bool binary : {false, true}) {
      auto r = read(c.request, binary);
      ASSERT_TRUE(r) << c.request.dump() << ": " << r.error().message;
      // Compared as the frames the node gets.
      EXPECT_EQ(node_frame(*r), node_frame(c.expected)) << c.request.dump() << (binary ? " (msgpack)" : " (JSON)");
    }
}

TEST(BridgeClientRequest, WhatTheBridgeReadsTheNodeReadsBackTheSame) {
  // Round trip: client JSON -> typed -> the node's frame -> the node's reader -> typed.
  for (const json& request :
       {json{{"op", "publish"}, {"id", 9}, {"room", "général"}, {"cmid", "c\u00e9"}, {"body", std::string(65536, 'x')}},
        json{{"op", "history"}, {"id", 9}, {"room", "r"}, {"limit", 4294967295ull}, {"after", 18446744073709551615ull}},
        json{{"op", "set_status"}, {"id", 9}, {"status", "busy"}, {"text", std::string(256, 'y')}}}) {
    auto r = read(request);
    ASSERT_TRUE(r) << request.dump();
    const std::string frame = node_frame(*r);
    if (std::holds_alternative<transport::RequestBody>(*r)) {
      auto back = transport::decode_request(frame, kLimits);
      ASSERT_TRUE(back.body) << back.body.error().message;
      EXPECT_EQ(back.id, 7u);
      EXPECT_EQ(back.as, "ann");
      EXPECT_EQ(transport::encode_request({7, *back.body, back.as}), frame);
    } else {
      auto back = transport::decode_presence_request(frame, kLimits);
      ASSERT_TRUE(back.body) << back.body.error().message;
      EXPECT_EQ(transport::encode_presence_request({7, *back.body, back.as}), frame);
    }
  }
}

TEST(BridgeClientRequest, ABadFieldGetsTheErrorTheNodeGivesWordForWord) {
  struct Case {
    json request;
    errc code;
    bool presence = false, with_user = false, with_session = false;
  };
  const std::string long_room(129, 'r'), long_user(65, 'u'), long_cmid(65, 'c'), long_body(65537, 'b');
  const std::vector<Case> cases = {
      {{{"op", "publish"}, {"id", 5}, {"cmid", "x"}, {"body", "b"}}, errc::bad_field, false, true},
      {{{"op", "publish"}, {"id", 5}, {"room", 5}, {"cmid", "x"}, {"body", "b"}}, errc::bad_field, false, true},
      {{{"op", "publish"}, {"id", 5}, {"room", long_room}, {"cmid", "x"}, {"body", "b"}}, errc::too_large, false, true},
      {{{"op", "publish"}, {"id", 5}, {"room", "a\nb"}, {"cmid", "x"}, {"body", "b"}}, errc::bad_field, false, true},
      {{{"op", "publish"}, {"id", 5}, {"room", ""}, {"cmid", "x"}, {"body", "b"}}, errc::bad_field, false, true},
      {{{"op", "publish"}, {"id", 5}, {"room", "r"}, {"cmid", ""}, {"body", "b"}}, errc::bad_field, false, true},
      {{{"op", "publish"}, {"id", 5}, {"room", "r"}, {"cmid", long_cmid}, {"body", "b"}}, errc::too_large, false, true},
      {{{"op", "publish"}, {"id", 5}, {"room", "r"}, {"cmid", "x"}, {"body", {"not", "text"}}}, errc::bad_field, false,
       true},
      {{{"op", "publish"}, {"id", 5}, {"room", "r"}, {"cmid", "x"}, {"body", long_body}}, errc::too_large, false, true},
      {{{"op", "publish"}, {"id", 5}, {"room", "r"}, {"cmid", "x"}, {"body", {{"deep", {{"er", 1}}}}}},
       errc::bad_field, false, true},
      {{{"op", "history"}, {"id", 5}, {"room", long_room}}, errc::too_large},
      {{{"op", "history"}, {"id", 5}, {"room", "r"}, {"before", 3}, {"after", 1}}, errc::bad_field},
      {{{"op", "history"}, {"id", 5}, {"room", "r"}, {"limit", 4294967296ull}}, errc::bad_field},
      {{{"op", "history"}, {"id", 5}, {"room", "r"}, {"limit", -1}}, errc::bad_field},
      {{{"op", "history"}, {"id", 5}, {"room", "r"}, {"after", 1.5}}, errc::bad_field},
      {{{"op", "create_room"}, {"id", 5}, {"room", "r"}, {"private", "yes"}}, errc::bad_field, false, true},
      {{{"op", "create_room"}, {"id", 5}, {"room", "r"}, {"private", nullptr}}, errc::bad_field, false, true},
      {{{"op", "join"}, {"id", 5}, {"room", true}}, errc::bad_field, false, true},
      {{{"op", "leave"}, {"id", 5}}, errc::bad_field, false, true},
      {{{"op", "add_member"}, {"id", 5}, {"room", "r"}, {"user", long_user}}, errc::too_large},
      {{{"op", "add_member"}, {"id", 5}, {"room", "r"}, {"user", "bob"}, {"role", 5}}, errc::bad_field},
      {{{"op", "remove_member"}, {"id", 5}, {"room", "r"}}, errc::bad_field},
      {{{"op", "ban"}, {"id", 5}, {"room", "r"}}, errc::bad_field},
      {{{"op", "unban"}, {"id", 5}, {"user", "bob"}}, errc::bad_field},
      {{{"op", "set_role"}, {"id", 5}, {"room", "r"}, {"user", "bob"}}, errc::bad_field},
      {{{"op", "set_role"}, {"id", 5}, {"room", "r"}, {"user", "bob"}, {"role", "boss"}}, errc::bad_field},
      {{{"op", "delete_room"}, {"id", 5}, {"room", {1, 2}}}, errc::bad_field},
      {{{"op", "members"}, {"id", 5}, {"room", nullptr}}, errc::bad_field},
      {{{"op", "last_seq"}, {"id", 5}, {"room", "\x7f"}}, errc::bad_field},
      {{{"op", "who"}, {"id", 5}, {"room", long_room}}, errc::too_large, true},
      {{{"op", "status"}, {"id", 5}, {"user", long_user}}, errc::too_large, true},
      {{{"op", "status"}, {"id", 5}}, errc::bad_field, true},
      {{{"op", "typing"}, {"id", 5}, {"room", 1}}, errc::bad_field, true, false, true},
      {{{"op", "set_status"}, {"id", 5}, {"status", "sleepy"}, {"text", ""}}, errc::bad_field, true, false, true},
      {{{"op", "set_status"}, {"id", 5}, {"status", "away"}, {"text", std::string(257, 't')}}, errc::too_large, true,
       false, true},
      {{{"op", "set_status"}, {"id", 5}, {"status", "away"}}, errc::bad_field, true, false, true},
  };
  for (const auto& c : cases)
    for (bool binary : {false, true}) {
      auto r = read(c.request, binary);
      ASSERT_FALSE(r) << c.request.dump().substr(0, 200);
      EXPECT_EQ(r.error().code, c.code) << c.request.dump().substr(0, 200) << ": " << r.error().message;
      const Error node = node_verdict(c.request, c.presence, c.with_user, c.with_session);
      EXPECT_EQ(r.error(), node) << c.request.dump().substr(0, 200);
    }
}

TEST(BridgeClientRequest, BinaryFramesAreCheckedForUtf8AndTypesAsTheNodeChecksThem) {
  // {"op": "publish", "id": 1, "room": "r", "cmid": "x", "body": <bytes>}, with the body
  // as invalid UTF-8 text, then as msgpack binary.
  auto frame_with_body = [](std::string_view body_header, std::string_view body) {
    std::string f = "\x85\xa2op\xa7publish\xa2id\x01\xa4room\xa1r\xa4\x63mid\xa1x\xa4\x62ody";
    return f.append(body_header).append(body);
  };
  for (const auto& [frame, code] :
       {std::pair{frame_with_body("\xa3", "\xff\xfe\xfd"), errc::bad_utf8},
        std::pair{frame_with_body(std::string_view("\xc4\x03", 2), "abc"), errc::bad_field}}) {
    std::string scratch;
    ClientFrame f = frame_of(frame, true, scratch);
    transport::FieldReader fields(f.root());
    auto r = find_client_op("publish")->read(fields, kLimits, kAnn);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, code) << r.error().message;
  }
}

// ---- replies and events, as JSON -------------------------------------------------------

TEST(BridgeJson, EveryReplyReadsAsTheNodesMsgpackReplyReads) {
  using namespace transport;
  std::vector<Reply> replies = {
      {1, HelloOk{1, "node-a", {"tcp://1"}, 65536, {"tcp://2"}, {"tcp://3"}, 1000}},
      {2, PingOk{}},
      {3, CreateRoomOk{true}},
      {4, JoinOk{false}},
      {5, LeaveOk{true}},
      {6, RoomsOk{{"a", "b"}, {}}},
      {6, RoomsOk{{}, {"node-b"}}},
      {7, MembersOk{{"ann", "bob"}, {Role::owner, Role::reader}}},
      {7, MembersOk{{"ann"}, {}}},
      {8, PublishOk{"général", 42, 1763900000000, true}},
      {9, PublishBatchOk{"r", {{1, 2, false}, {0, 0, false, errc::too_large, "too long"}}}},
      {10, HistoryOk{{{"r", 1, "ann", 5, "a \"quoted\"\n\t\\ body \x01 ✓", "c1"}, {"r", 2, "bob", 6, "", "c2"}}, true}},
      {10, HistoryOk{{}, false}},
      {11, LastSeqOk{"r", 18446744073709551615ull}},
      {12, CallOk{"bot", "{\"json\": \"inside\"}"}},
      {13, AddMemberOk{true}},
      {14, RemoveMemberOk{false}},
      {14, BanOk{true}},
      {14, UnbanOk{false}},
      {15, SetRoleOk{true}},
      {16, DeleteRoomOk{true}},
      {17, ShardsOk{{{"s1", "a", "replicated", 3, 99, true, {{"b", 98, true}, {"c", 0, false}}}}, {"d"}}},
      {18, ErrorReply{errc::no_such_room, "no room 'x'"}},
  };
  for (const auto& r : replies) {
    const std::string text = reply_json(r);
    EXPECT_EQ(json::parse(text), as_client_reads(encode_reply(r))) << text;
    EXPECT_TRUE(text.rfind(R"({"v":1,"op":")", 0) == 0) << text;
  }
}

TEST(BridgeJson, PresenceRepliesEventsAndMessagesReadAsTheNodesMsgpackReads) {
  using namespace transport;
  for (const PresenceReply& r :
       std::vector<PresenceReply>{{1, SessionOpenOk{"s", 5000, 15000}},
                                  {2, HeartbeatOk{}},
                                  {3, SessionCloseOk{}},
                                  {4, SetStatusOk{}},
                                  {5, TypingOk{}},
                                  {6, WhoOk{"r", 7, {{"ann", Availability::away, "lunch"}, {"bob", {}, ""}}, {"bob"}}},
                                  {7, UserStatusOk{"ann", true, Availability::busy, "call"}},
                                  {7, UserStatusOk{"bob", false, Availability::online, "", 1763900000000}},
                                  {8, ErrorReply{errc::unknown_session, "open it again"}}})
    EXPECT_EQ(json::parse(presence_reply_json(r)), as_client_reads(encode_presence_reply(r)));
  for (auto kind : {PresenceEvent::Kind::online, PresenceEvent::Kind::leave, PresenceEvent::Kind::typing}) {
    const PresenceEvent e{"r", 3, kind, "ann", Availability::away, "back soon", 4000};
    EXPECT_EQ(json::parse(presence_event_json(e)), as_client_reads(encode_presence_event(e)));
  }
  const RoomMessage m{"général", 42, "bob", 1763900000000, "hi \"there\"\n", "cmid-1"};
  EXPECT_EQ(json::parse(message_json(m)), as_client_reads(encode_message(m)));
}

TEST(BridgeJson, StringsAreSpelledAsNlohmannSpellsThem) {
  std::string all;
  for (int c = 1; c < 0x80; ++c) all.push_back(static_cast<char>(c));
  for (const std::string& s : {all, std::string("é ✓ 😀 \xe2\x80\xa8"), std::string("nul\0inside", 10),
                               std::string("\"\\/")}) {
    const std::string mine = JsonWriter().str(s).take();
    EXPECT_EQ(mine, json(s).dump()) << s;
  }
}

TEST(BridgeJson, TextThatIsNotUtf8IsWrittenAsValidUtf8) {
  // An op name cut at 64 bytes in the middle of a character, as the unknown_op message
  // quotes it: the text frame must still be UTF-8, or a browser fails the connection.
  const std::string cut = std::string(63, 'a') + "\xc3";
  for (const std::string& bad : {cut, std::string("\xff"), std::string("a\xe2\x82z"), std::string("\xed\xa0\x80")}) {
    const std::string text = JsonWriter().str(bad).take();
    EXPECT_TRUE(json::accept(text)) << text;
    EXPECT_NE(text.find("\xef\xbf\xbd"), std::string::npos) << text;
    EXPECT_EQ(text, json(bad).dump(-1, ' ', false, json::error_handler_t::replace)) << text;
  }
}

TEST(BridgeJson, TheBridgesOwnFramesReadTheSameInBothFormats) {
  for (bool binary : {false, true}) {
    const std::string frame =
        MapWriter(binary, 6).u64("v", 1).str("op", "subscribe").u64("id", 2).str("room", "general").u64("last_seq", 44)
            .boolean("presence", true).take();
    const json j = binary ? json::from_msgpack(frame) : json::parse(frame);
    EXPECT_EQ(j, json::parse(R"({"v":1,"op":"subscribe","id":2,"room":"general","last_seq":44,"presence":true})"));
  }
  // An error a binary client reads with the node's own reader.
  auto e = transport::decode_reply(error_frame(true, 9, "no_such_room", "gone"), kLimits);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->id, 9u);
  EXPECT_EQ(std::get<transport::ErrorReply>(e->body).code, errc::no_such_room);
  // rate_limited says when to retry; other errors have no such field.
  EXPECT_EQ(json::parse(error_frame(false, 3, "rate_limited", "slow down", 250))["retry_after_ms"], 250);
  EXPECT_FALSE(json::parse(error_frame(false, 3, "bad_field", "no")).contains("retry_after_ms"));
  EXPECT_EQ(json::from_msgpack(error_frame(true, 3, "too_many_subscriptions", "128 at most"))["code"],
            "too_many_subscriptions");
}
