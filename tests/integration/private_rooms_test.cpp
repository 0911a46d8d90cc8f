// A private room does not exist for a non-member (docs/SECURITY.md): every operation of
// docs/PROTOCOL.md that names a room answers a non-member of a private room word for
// word as it answers a room that does not exist. Real node, real clients, `as` a user.
#include <gtest/gtest.h>

#include <functional>

#include "node_process.hpp"
#include "switchboard/client/client.hpp"
#include "switchboard/client/presence.hpp"

using namespace switchboard;
using switchboard::testing::NodeProcess;
using switchboard::testing::TempDir;

namespace {

client::ClientOptions as_user(const NodeProcess& node, const std::string& user) {
  client::ClientOptions o;
  o.endpoint = node.client_endpoint();
  auto keys = client::load_local_keys(node.keys_dir());
  if (!keys) throw std::runtime_error(keys.error().message);
  o.curve = *keys;
  o.as = user;
  return o;
}

/// What an operation answered: "ok" or "code: message", with the room's name replaced
/// by ROOM so that two rooms' answers compare.
template <class T>
std::string answer(const Result<T>& r, const std::string& room) {
  if (r) return "ok";
  std::string text = std::string(errc_name(r.error().code)) + ": " + r.error().message;
  for (auto at = text.find(room); at != std::string::npos; at = text.find(room, at)) text.replace(at, room.size(), "ROOM");
  return text;
}

}  // namespace

TEST(PrivateRooms, EveryOperationAnswersANonMemberAsForARoomThatDoesNotExist) {
  TempDir data;
  NodeProcess node(data.path(), {"--durability", "nosync", "--bridge", "off", "--metrics", "off"});
  client::Client ann(as_user(node, "ann"));
  ASSERT_TRUE(ann.create_room("secret", "ann", true));
  ASSERT_TRUE(ann.add_member("secret", "bob"));
  ASSERT_TRUE(ann.publish("secret", "ann", "for members only"));

  const auto eve_options = as_user(node, "eve");
  client::Client eve(eve_options);
  auto presence = client::PresenceClient::connect(eve, eve_options);
  ASSERT_TRUE(presence) << presence.error().message;
  ASSERT_TRUE((*presence)->open("eve"));

  // Every operation of PROTOCOL.md sections 4 and 7 that names a room, as eve.
  const std::vector<std::pair<std::string, std::function<std::string(const std::string&)>>> ops = {
      {"join", [&](const std::string& r) { return answer(eve.join(r, "eve"), r); }},
      {"leave", [&](const std::string& r) { return answer(eve.leave(r, "eve"), r); }},
      {"members", [&](const std::string& r) { return answer(eve.members(r), r); }},
      {"publish", [&](const std::string& r) { return answer(eve.publish(r, "eve", "x"), r); }},
      {"history", [&](const std::string& r) { return answer(eve.history(r), r); }},
      {"history before", [&](const std::string& r) { return answer(eve.history(r, {10, 5, {}}), r); }},
      {"history after", [&](const std::string& r) { return answer(eve.history(r, {10, {}, 0}), r); }},
      {"last_seq", [&](const std::string& r) { return answer(eve.last_seq(r), r); }},
      {"add_member", [&](const std::string& r) { return answer(eve.add_member(r, "eve"), r); }},
      {"remove_member", [&](const std::string& r) { return answer(eve.remove_member(r, "bob"), r); }},
      {"set_role", [&](const std::string& r) { return answer(eve.set_role(r, "bob", Role::reader), r); }},
      {"delete_room", [&](const std::string& r) { return answer(eve.delete_room(r), r); }},
      {"subscribe", [&](const std::string& r) { return answer(eve.subscribe(r), r); }},
      {"who", [&](const std::string& r) { return answer((*presence)->who(r), r); }},
      {"typing", [&](const std::string& r) { return answer((*presence)->typing(r), r); }},
  };
  for (const auto& [op, call] : ops) {
    const std::string missing = call("nowhere");
    EXPECT_EQ(missing, "no_such_room: no room named 'ROOM'") << op;
    EXPECT_EQ(call("secret"), missing) << op << ": the private room shows through";
  }
  auto rooms = eve.rooms();
  ASSERT_TRUE(rooms);
  EXPECT_EQ(std::count(rooms->rooms.begin(), rooms->rooms.end(), "secret"), 0) << "not listed";

  // create_room of its name: refused without saying why, never `created: false`.
  auto taken = eve.create_room("secret", "eve");
  ASSERT_FALSE(taken);
  EXPECT_EQ(taken.error().code, errc::name_unavailable);
  EXPECT_EQ(taken.error().message, "the name 'secret' cannot be used for a new room");
  // A member sees the room as it is: created already.
  client::Client bob(as_user(node, "bob"));
  auto exists = bob.create_room("secret", "bob");
  ASSERT_TRUE(exists);
  EXPECT_FALSE(*exists);

  // Nothing eve did changed the room.
  auto history = ann.history("secret");
  ASSERT_TRUE(history);
  ASSERT_EQ(history->messages.size(), 1u);
  EXPECT_EQ(history->messages[0].body, "for members only");
  auto members = ann.members("secret");
  ASSERT_TRUE(members);
  EXPECT_EQ(*members, (std::vector<std::string>{"ann", "bob"}));
  EXPECT_EQ(node.stop(), 0);
}
