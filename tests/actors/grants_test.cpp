// Service grants: what a key the topology grants may ask, request by request.
#include <gtest/gtest.h>

#include "switchboard/actors/grants.hpp"

using namespace switchboard;
using namespace switchboard::transport;
using switchboard::actors::check_grant;
using switchboard::actors::room_matches;
using Ops = router::Grant::Ops;

namespace {

router::Grant grant(Ops ops, std::vector<std::string> users = {"*"}, std::vector<std::string> rooms = {"*"}) {
  return router::Grant{"bot", {}, std::move(users), std::move(rooms), ops};
}

errc verdict(const router::Grant& g, const RequestBody& r, std::optional<std::string> as = std::nullopt) {
  auto refused = check_grant(g, r, as);
  return refused ? refused->code : errc::ok;
}

}  // namespace

TEST(Grants, EachOpNeedsItsLevel) {
  struct Row { RequestBody request; Ops needs; };
  const std::vector<Row> rows = {
      {Hello{}, Ops::read},
      {ListRooms{}, Ops::read},
      {Members{"r"}, Ops::read},
      {History{"r", 10, {}, {}}, Ops::read},
      {LastSeq{"r"}, Ops::read},
      {CreateRoom{"r", "u"}, Ops::write},
      {Join{"r", "u"}, Ops::write},
      {Leave{"r", "u"}, Ops::write},
      {Publish{"r", "u", "c", "b"}, Ops::write},
      {Call{"s", "u", "b"}, Ops::write},
      {AddMember{"r", "u"}, Ops::manage},
      {RemoveMember{"r", "u"}, Ops::manage},
      {Ban{"r", "u"}, Ops::manage},
      {Kick{"r", "u"}, Ops::manage},
      {Disconnect{"u"}, Ops::manage},
      {SetNotify{"r", "u", NotifyLevel::none}, Ops::write},
      {Unban{"r", "u"}, Ops::manage},
      {SetRole{"r", "u", Role::owner}, Ops::manage},
      {DeleteRoom{"r"}, Ops::manage},
  };
  for (const auto& row : rows)
    for (Ops level : {Ops::read, Ops::write, Ops::manage})
      EXPECT_EQ(verdict(grant(level), row.request), level >= row.needs ? errc::ok : errc::forbidden)
          << op_name(row.request) << " with level " << static_cast<int>(level);
}

TEST(Grants, AGrantForSomeUsersNeedsAsAndActsForThemOnly) {
  const auto g = grant(Ops::manage, {"bot", "helper"});
  EXPECT_EQ(verdict(g, Publish{"r", "bot", "c", "b"}, "bot"), errc::ok);
  EXPECT_EQ(verdict(g, Publish{"r", "bot", "c", "b"}), errc::forbidden) << "no as";
  EXPECT_EQ(verdict(g, Publish{"r", "ann", "c", "b"}, "bot"), errc::forbidden) << "publishing as ann";
  EXPECT_EQ(verdict(g, Publish{"r", "ann", "c", "b"}, "ann"), errc::forbidden) << "acting for ann";
  EXPECT_EQ(verdict(g, History{"r", 0, {}, {}}, "helper"), errc::ok);
  EXPECT_EQ(verdict(g, AddMember{"r", "ann"}, "bot"), errc::ok) << "ann is the member acted on, bot the actor";
  auto refused = check_grant(g, Publish{"r", "bot", "c", "b"}, std::nullopt);
  ASSERT_TRUE(refused);
  EXPECT_NE(refused->message.find("service grant 'bot'"), std::string::npos) << refused->message;
}

TEST(Grants, AGrantForSomeRoomsTouchesOnlyThoseAndListsNone) {
  const auto g = grant(Ops::write, {"*"}, {"ops-*", "lobby"});
  EXPECT_EQ(verdict(g, Publish{"ops-1", "u", "c", "b"}), errc::ok);
  EXPECT_EQ(verdict(g, Publish{"lobby", "u", "c", "b"}), errc::ok);
  EXPECT_EQ(verdict(g, Publish{"lobby2", "u", "c", "b"}), errc::forbidden);
  EXPECT_EQ(verdict(g, History{"op", 0, {}, {}}), errc::forbidden);
  EXPECT_EQ(verdict(g, ListRooms{}), errc::forbidden);
  EXPECT_EQ(verdict(g, ListRooms{"u"}), errc::ok) << "one user's rooms";
  EXPECT_TRUE(room_matches({"*"}, "anything"));
  EXPECT_TRUE(room_matches({"ops-*"}, "ops-"));
  EXPECT_FALSE(room_matches({"ops"}, "ops-1"));
}

TEST(Grants, PresenceRequestsToo) {
  const auto g = grant(Ops::read, {"bot"}, {"ops-*"});
  auto check = [&](const PresenceRequestBody& r, std::optional<std::string> as) {
    auto refused = check_grant(g, r, as);
    return refused ? refused->code : errc::ok;
  };
  EXPECT_EQ(check(Who{"ops-1"}, "bot"), errc::ok);
  EXPECT_EQ(check(Who{"lobby"}, "bot"), errc::forbidden);
  EXPECT_EQ(check(Who{"ops-1"}, std::nullopt), errc::forbidden);
  EXPECT_EQ(check(SessionOpen{"s", "bot"}, "bot"), errc::forbidden) << "a read grant opens no session";
  const auto w = grant(Ops::write, {"bot"});
  EXPECT_EQ(check_grant(w, SessionOpen{"s", "bot"}, std::string("bot")), std::nullopt);
  EXPECT_TRUE(check_grant(w, SessionOpen{"s", "ann"}, std::string("bot")));
}

TEST(Grants, ABackupNeedsManageOverEveryRoomAndUser) {
  const RequestBody begin = Backup{};
  EXPECT_EQ(verdict(grant(Ops::manage), begin), errc::ok);
  EXPECT_EQ(verdict(grant(Ops::write), begin), errc::forbidden) << "a backup is for managers";
  EXPECT_EQ(verdict(grant(Ops::manage, {"*"}, {"ops-*"}), begin), errc::forbidden) << "it holds every room";
  EXPECT_EQ(verdict(grant(Ops::manage, {"bot"}), begin, "bot"), errc::forbidden) << "it holds every user's data";
}

TEST(Grants, ADisconnectNeedsAManageGrantOverEveryUser) {
  EXPECT_EQ(verdict(grant(Ops::manage), Disconnect{"ann"}), errc::ok);
  EXPECT_EQ(verdict(grant(Ops::manage, {"ann"}), Disconnect{"ann"}, "ann"), errc::forbidden);
  EXPECT_EQ(verdict(grant(Ops::write), Disconnect{"ann"}), errc::forbidden);
}
