// The HTTP API's reading of requests and writing of answers (actors/api/api_request.hpp)
// and its keys (actors/api/api_keys.hpp), as pure functions: a path and a JSON body
// become the node's frame, read by the node's own decoder; a bad body, a field the node
// refuses and a grant's refusal get the protocol's codes and the HTTP statuses of
// docs/API.md; a reply becomes the JSON a backend reads, without `v` and `id`.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "switchboard/actors/api/api_keys.hpp"
#include "switchboard/actors/api/api_request.hpp"
#include "switchboard/transport/codec.hpp"

using namespace switchboard;
using namespace switchboard::actors::api;
using json = nlohmann::json;

namespace {

const transport::Limits kLimits;

/// The request for `path` with `body`, read for a key with `grant` (nullptr: every right).
Result<NodeFrame> read(std::string_view path, std::string_view body, const router::Grant* grant = nullptr,
                       std::uint64_t id = 7) {
  auto op = find_op(path);
  if (!op) return op.error();
  std::string scratch;
  return read_request(op->first, op->second, body, id, grant, kLimits, scratch);
}

router::Grant grant(router::Grant::Ops ops, std::vector<std::string> rooms) {
  router::Grant g;
  g.name = "deploy";
  g.ops = ops;
  g.rooms = std::move(rooms);
  return g;
}

}  // namespace

TEST(ApiRequest, APathNamesAnOperationOfTheProtocol) {
  auto publish = find_op("/api/v1/publish");
  ASSERT_TRUE(publish);
  EXPECT_EQ(publish->first, "publish");
  EXPECT_EQ(publish->second, Handler::chat);
  for (std::string_view op : {"ban", "unban"}) {  // every op of the table is a route
    auto route = find_op("/api/v1/" + std::string(op));
    ASSERT_TRUE(route) << op;
    EXPECT_EQ(route->first, op);
    EXPECT_EQ(route->second, Handler::chat);
  }
  auto who = find_op("/api/v1/who?x=1");
  ASSERT_TRUE(who) << "a query string is ignored";
  EXPECT_EQ(who->second, Handler::presence);
  for (std::string_view bad : {"/api/v1/backup", "/api/v1/session_open", "/api/v1/typing", "/api/v1/", "/api/v2/publish",
                               "/publish", "/api/v1/publish/x", "/api/v1/PUBLISH"}) {
    auto op = find_op(bad);
    ASSERT_FALSE(op) << bad;
    EXPECT_EQ(op.error().code, errc::unknown_op) << bad;
    EXPECT_EQ(http_status(op.error().code), 404u);
  }
}

TEST(ApiRequest, ABodyBecomesTheNodesFrameWithTheOpAndId) {
  auto frame = read("/api/v1/publish",
                    R"({"room":"general","user":"ops","body":"deploy done","cmid":"d-1","mentions":["ann"],"as":"ops"})",
                    nullptr, 42);
  ASSERT_TRUE(frame) << frame.error().message;
  EXPECT_EQ(frame->handler, Handler::chat);
  auto decoded = transport::decode_request(frame->frame, kLimits);
  ASSERT_TRUE(decoded.body) << decoded.body.error().message;
  EXPECT_EQ(decoded.id, 42u);
  EXPECT_EQ(decoded.as, std::optional<std::string>("ops"));
  const auto* publish = std::get_if<transport::Publish>(&*decoded.body);
  ASSERT_NE(publish, nullptr);
  EXPECT_EQ(publish->room, "general");
  EXPECT_EQ(publish->user, "ops");
  EXPECT_EQ(publish->body, "deploy done");
  EXPECT_EQ(publish->client_msg_id, "d-1");
  EXPECT_EQ(publish->mentions, std::vector<std::string>{"ann"});

  auto empty = read("/api/v1/ping", "");
  ASSERT_TRUE(empty) << "an empty body is {}: " << empty.error().message;
  EXPECT_TRUE(std::holds_alternative<transport::Ping>(*transport::decode_request(empty->frame, kLimits).body));

  auto status = read("/api/v1/status", R"({"user":"ann"})");
  ASSERT_TRUE(status) << status.error().message;
  EXPECT_EQ(status->handler, Handler::presence);
  auto presence = transport::decode_presence_request(status->frame, kLimits);
  ASSERT_TRUE(presence.body);
  EXPECT_EQ(std::get<transport::UserStatus>(*presence.body).user, "ann");
}

TEST(ApiRequest, ABadBodyGetsTheCodeAndStatusOfTheDocument) {
  struct Case {
    std::string path, body;
    errc code;
    unsigned status;
    std::string says;
  };
  const std::vector<Case> cases = {
      {"/api/v1/last_seq", R"({"room":"general")", errc::bad_frame, 400, "at byte 18"},
      {"/api/v1/last_seq", R"({"room": nul})", errc::bad_frame, 400, "at byte"},
      {"/api/v1/last_seq", R"(["general"])", errc::bad_frame, 400, "one JSON object"},
      {"/api/v1/last_seq", R"("general")", errc::bad_frame, 400, "one JSON object"},
      {"/api/v1/last_seq", R"({"room":"general","op":"publish"})", errc::bad_field, 400, "'op' is not a field"},
      {"/api/v1/last_seq", R"({"room":"general","id":3})", errc::bad_field, 400, "'id' is not a field"},
      {"/api/v1/last_seq", R"({"room":"general","v":1})", errc::bad_field, 400, "'v' is not a field"},
      {"/api/v1/publish", R"({"room":"general","user":"ops","body":"x"})", errc::bad_field, 400, "cmid"},
      {"/api/v1/publish", R"({"room":"general","user":"ops","body":7,"cmid":"c"})", errc::bad_field, 400, "body"},
      {"/api/v1/last_seq", R"({"room":")" + std::string(200, 'r') + R"("})", errc::too_large, 413, "room"},
      {"/api/v1/last_seq", R"({"room":"g","x":[[[[[[[[[[1]]]]]]]]]]})", errc::too_large, 413, "nesting"},
  };
  for (const auto& c : cases) {
    auto r = read(c.path, c.body);
    ASSERT_FALSE(r) << c.body;
    EXPECT_EQ(r.error().code, c.code) << c.body << ": " << r.error().message;
    EXPECT_EQ(http_status(r.error().code), c.status) << c.body;
    EXPECT_NE(r.error().message.find(c.says), std::string::npos) << c.body << ": " << r.error().message;
  }
}

TEST(ApiRequest, AGrantIsCheckedBeforeTheRequestLeaves) {
  const auto writer = grant(router::Grant::Ops::write, {"ops-*"});
  EXPECT_TRUE(read("/api/v1/publish", R"({"room":"ops-deploys","user":"bot","body":"b","cmid":"c"})", &writer));
  auto outside = read("/api/v1/publish", R"({"room":"general","user":"bot","body":"b","cmid":"c"})", &writer);
  ASSERT_FALSE(outside);
  EXPECT_EQ(outside.error().code, errc::forbidden);
  EXPECT_EQ(http_status(errc::forbidden), 403u);
  EXPECT_NE(outside.error().message.find("grant 'deploy' may not touch room 'general'"), std::string::npos)
      << outside.error().message;
  auto manage = read("/api/v1/delete_room", R"({"room":"ops-deploys"})", &writer);
  ASSERT_FALSE(manage);
  EXPECT_NE(manage.error().message.find("'delete_room' needs manage"), std::string::npos) << manage.error().message;

  const auto reader = grant(router::Grant::Ops::read, {"*"});
  EXPECT_TRUE(read("/api/v1/history", R"({"room":"general"})", &reader));
  auto publish = read("/api/v1/publish", R"({"room":"general","user":"bot","body":"b","cmid":"c"})", &reader);
  ASSERT_FALSE(publish);
  EXPECT_EQ(publish.error().code, errc::forbidden);
}

TEST(ApiRequest, ARepliesJsonHasTheOpAndFieldsButNoEnvelope) {
  std::uint64_t id = 0;
  auto ok = read_reply(Handler::chat,
                       transport::encode_reply({9, transport::PublishOk{"general", 12, 1765000000000, false}}), kLimits, id);
  EXPECT_EQ(id, 9u);
  EXPECT_EQ(ok.status, 200u);
  EXPECT_EQ(json::parse(ok.body),
            json({{"op", "publish"}, {"room", "general"}, {"seq", 12}, {"ts", 1765000000000}, {"duplicate", false}}));

  auto error = read_reply(Handler::chat,
                          transport::encode_reply({10, transport::ErrorReply{errc::no_such_room, "no room 'x'"}}), kLimits, id);
  EXPECT_EQ(id, 10u);
  EXPECT_EQ(error.status, 404u);
  EXPECT_EQ(json::parse(error.body), json({{"op", "error"}, {"code", "no_such_room"}, {"message", "no room 'x'"}}));

  auto presence = read_reply(Handler::presence,
                             transport::encode_presence_reply({11, transport::ErrorReply{errc::rate_limited, "slow"}}),
                             kLimits, id);
  EXPECT_EQ(presence.status, 429u);

  auto garbage = read_reply(Handler::chat, "\x81\xa1x", kLimits, id);
  EXPECT_EQ(id, 0u);
  EXPECT_EQ(garbage.status, 500u);
  EXPECT_EQ(json::parse(garbage.body).at("code"), "internal");
}

TEST(ApiRequest, EveryCodeHasTheStatusOfTheDocument) {
  const std::vector<std::pair<errc, unsigned>> table = {
      {errc::bad_frame, 400},        {errc::bad_field, 400},         {errc::bad_utf8, 400},
      {errc::unsupported_version, 400}, {errc::unauthenticated, 401}, {errc::forbidden, 403},
      {errc::not_member, 403},       {errc::unknown_op, 404},        {errc::no_such_room, 404},
      {errc::no_such_service, 404},  {errc::unknown_session, 404},   {errc::name_unavailable, 409},
      {errc::limit_reached, 409},    {errc::too_large, 413},         {errc::refused, 422},
      {errc::rate_limited, 429},     {errc::internal, 500},          {errc::unavailable, 503},
      {errc::storage_full, 507},     {errc::no_such_message, 404},   {errc::message_deleted, 409},
      {errc::too_late, 409},         {errc::no_change, 409},
  };
  for (const auto& [code, status] : table) EXPECT_EQ(http_status(code), status) << errc_name(code);
}

TEST(ApiKeys, AKeyIsFoundByItsHashWithItsRights) {
  ApiKeys keys;
  const std::string full(40, 'f'), bot(32, 'b');
  keys.admit(full, std::nullopt);
  keys.admit(bot, grant(router::Grant::Ops::read, {"ops-*"}));
  EXPECT_EQ(keys.size(), 2u);
  auto all = keys.find(full);
  ASSERT_TRUE(all);
  EXPECT_EQ(*all, nullptr) << "every right";
  auto some = keys.find(bot);
  ASSERT_TRUE(some);
  ASSERT_NE(*some, nullptr);
  EXPECT_EQ((*some)->name, "deploy");
  EXPECT_FALSE(keys.find(std::string(32, 'c')));
  EXPECT_FALSE(keys.find(bot.substr(0, 31)));
  EXPECT_FALSE(keys.find(""));
}
