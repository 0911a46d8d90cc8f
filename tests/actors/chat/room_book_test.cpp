// Chat's room book (actors/chat/room_book.hpp) on its own: the room rules a user meets
// (docs/PROTOCOL.md section 3), what a change writes for the store and for presence,
// and a failed batch taken back exactly.
#include <gtest/gtest.h>

#include <random>
#include <set>
#include <tuple>

#include "switchboard/actors/chat/room_book.hpp"

namespace {

using switchboard::errc;
using switchboard::Role;
using switchboard::actors::MembershipChange;
using switchboard::actors::RoomBook;
namespace t = switchboard::transport;
namespace p = switchboard::persistence;

/// One batch's worth of changes: what the book wrote while applying requests.
struct Batch {
  std::vector<p::Record> records;
  std::vector<RoomBook::Undo> undo;
  std::vector<MembershipChange> presence;
  RoomBook::Changes changes() { return {records, undo, presence}; }
};

std::optional<std::string> as(std::string user) { return user; }
const std::optional<std::string> kNode = std::nullopt;  // a service acting for the node

/// Applies `request` and returns its error code (ok when it went ahead).
errc code(RoomBook& book, const t::RequestBody& request, const std::optional<std::string>& by, Batch& batch) {
  auto r = book.apply(request, by, 1000, batch.changes());
  return r ? errc::ok : r.error().code;
}

/// Everything a user of the book can see of it, to compare two books.
std::string dump(const RoomBook& book, const std::vector<std::string>& users) {
  std::string out;
  for (const auto& [name, room] : book.rooms()) {
    out += name + " by " + room.creator + " at " + std::to_string(room.created_ms) +
           (room.private_room ? " private" : "") + " seq " + std::to_string(room.last_seq) + "/" +
           std::to_string(room.durable_seq) + ":";
    for (const auto& [user, role] : room.members) out += " " + user + "=" + std::string(switchboard::role_name(role));
    out += " removed:";
    for (const auto& user : room.removed) out += " " + user;
    out += " banned:";
    for (const auto& user : room.banned) out += " " + user;
    out += "\n";
  }
  for (const auto& user : users) out += user + " in " + std::to_string(book.rooms_of(user)) + "\n";
  return out;
}

/// "den" (owner ann, member bob) with `stored` messages, and ann's private "vault".
RoomBook::Room& den_and_vault(RoomBook& book, std::uint64_t stored) {
  Batch b;
  EXPECT_TRUE(book.apply(t::CreateRoom{"den", "ann"}, as("ann"), 1000, b.changes()));
  EXPECT_TRUE(book.apply(t::Join{"den", "bob"}, as("bob"), 1000, b.changes()));
  EXPECT_TRUE(book.apply(t::CreateRoom{"vault", "ann", true}, as("ann"), 1000, b.changes()));
  RoomBook::Room& den = *book.find("den");
  den.last_seq = den.durable_seq = stored;
  return den;
}

}  // namespace

TEST(RoomBook, CreatingARoomMakesItsCreatorTheOwnerAndWritesItForTheStoreAndPresence) {
  RoomBook book(10);
  Batch b;
  auto r = book.apply(t::CreateRoom{"den", "ann", true}, as("ann"), 1234, b.changes());
  ASSERT_TRUE(r);
  EXPECT_TRUE(std::get<t::CreateRoomOk>(*r).created);
  const RoomBook::Room* den = book.find("den");
  ASSERT_NE(den, nullptr);
  EXPECT_EQ(den->creator, "ann");
  EXPECT_EQ(den->created_ms, 1234u);
  EXPECT_TRUE(den->private_room);
  EXPECT_EQ(den->members.at("ann"), Role::owner);
  ASSERT_EQ(b.records.size(), 2u);
  EXPECT_EQ(std::get<p::CreateRoom>(b.records[0]).creator, "ann");
  EXPECT_EQ(std::get<p::AddMember>(b.records[1]).role, Role::owner);
  ASSERT_EQ(b.presence.size(), 1u);
  EXPECT_EQ(b.presence[0].user, "ann");
  EXPECT_TRUE(b.presence[0].joined);
  EXPECT_TRUE(b.presence[0].private_room);

  // Again, by someone who sees it: not created, nothing written.
  Batch again;
  auto second = book.apply(t::CreateRoom{"den", "ann"}, as("ann"), 2000, again.changes());
  ASSERT_TRUE(second);
  EXPECT_FALSE(std::get<t::CreateRoomOk>(*second).created);
  EXPECT_TRUE(again.records.empty());
  EXPECT_TRUE(again.undo.empty());
  // By someone who does not see the private room: refused without saying it exists.
  auto taken = book.apply(t::CreateRoom{"den", "bob"}, as("bob"), 2000, again.changes());
  ASSERT_FALSE(taken);
  EXPECT_EQ(taken.error().code, errc::name_unavailable);
  EXPECT_EQ(book.find("den")->creator, "ann");
}

TEST(RoomBook, APrivateRoomIsNotThereForANonMember) {
  RoomBook book(10);
  Batch b;
  ASSERT_EQ(code(book, t::CreateRoom{"den", "ann", true}, as("ann"), b), errc::ok);
  EXPECT_EQ(book.find_visible("den", as("bob")), nullptr);
  EXPECT_NE(book.find_visible("den", as("ann")), nullptr);
  EXPECT_NE(book.find_visible("den", kNode), nullptr);
  EXPECT_EQ(code(book, t::Join{"den", "bob"}, as("bob"), b), errc::no_such_room);
  EXPECT_EQ(code(book, t::DeleteRoom{"den"}, as("bob"), b), errc::no_such_room);
  std::vector<RoomBook::Undo> undo;
  auto post = book.may_post("den", "bob", as("bob"), 1, undo);
  ASSERT_FALSE(post);
  EXPECT_EQ(post.error().code, errc::no_such_room);
  EXPECT_FALSE(RoomBook::listed("den", *book.find("den"), t::ListRooms{}, as("bob")));
  EXPECT_TRUE(RoomBook::listed("den", *book.find("den"), t::ListRooms{}, as("ann")));
  EXPECT_FALSE(RoomBook::listed("den", *book.find("den"), t::ListRooms{"bob"}, kNode));
  // An owner adds bob: now he sees it.
  ASSERT_EQ(code(book, t::AddMember{"den", "bob", Role::member}, as("ann"), b), errc::ok);
  EXPECT_NE(book.find_visible("den", as("bob")), nullptr);
  EXPECT_TRUE(RoomBook::summary("den", *book.find("den"), "bob").private_room) << "his list says it is private";
  // Its last member cannot leave it out of every user's reach: they delete it instead.
  ASSERT_EQ(code(book, t::Leave{"den", "bob"}, as("bob"), b), errc::ok);
  EXPECT_EQ(code(book, t::Leave{"den", "ann"}, as("ann"), b), errc::forbidden);
  EXPECT_EQ(book.find("den")->members.count("ann"), 1u);
  EXPECT_EQ(code(book, t::Leave{"den", "ann"}, kNode, b), errc::ok) << "a service may";
}

TEST(RoomBook, UsersActForThemselvesAndOnlyOwnersManage) {
  RoomBook book(10);
  Batch b;
  ASSERT_EQ(code(book, t::CreateRoom{"den", "ann"}, as("ann"), b), errc::ok);
  EXPECT_EQ(code(book, t::Join{"den", "cy"}, as("bob"), b), errc::forbidden);
  EXPECT_EQ(code(book, t::CreateRoom{"other", "cy"}, as("bob"), b), errc::forbidden);
  ASSERT_EQ(code(book, t::Join{"den", "bob"}, as("bob"), b), errc::ok);
  auto refused = book.apply(t::AddMember{"den", "cy", Role::member}, as("bob"), 1000, b.changes());
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, errc::forbidden);
  EXPECT_EQ(refused.error().message, "only an owner of 'den' may add members; 'bob' is a member");
  EXPECT_EQ(code(book, t::SetRole{"den", "bob", Role::owner}, as("bob"), b), errc::forbidden);
  EXPECT_EQ(code(book, t::RemoveMember{"den", "ann"}, as("bob"), b), errc::forbidden);
  EXPECT_EQ(code(book, t::DeleteRoom{"den"}, as("bob"), b), errc::forbidden);
  EXPECT_EQ(code(book, t::SetRole{"den", "cy", Role::owner}, as("ann"), b), errc::not_member);
  // The node (no `as`) manages any room.
  EXPECT_EQ(code(book, t::AddMember{"den", "cy", Role::reader}, kNode, b), errc::ok);
  EXPECT_EQ(book.find("den")->members.at("cy"), Role::reader);
  // A join of a member changes nothing and says so.
  Batch none;
  auto joined = book.apply(t::Join{"den", "bob"}, as("bob"), 1000, none.changes());
  ASSERT_TRUE(joined);
  EXPECT_FALSE(std::get<t::JoinOk>(*joined).joined);
  EXPECT_TRUE(none.records.empty());
}

TEST(RoomBook, MembersWhoAreNotReadersPostAndTheSeqIsNotedForUndoOncePerBatch) {
  RoomBook book(10);
  Batch b;
  ASSERT_EQ(code(book, t::CreateRoom{"den", "ann"}, as("ann"), b), errc::ok);
  ASSERT_EQ(code(book, t::AddMember{"den", "rita", Role::reader}, as("ann"), b), errc::ok);
  std::vector<RoomBook::Undo> undo;
  auto reader = book.may_post("den", "rita", as("rita"), 7, undo);
  ASSERT_FALSE(reader);
  EXPECT_EQ(reader.error().code, errc::forbidden);
  auto stranger = book.may_post("den", "zed", kNode, 7, undo);
  ASSERT_FALSE(stranger);
  EXPECT_EQ(stranger.error().code, errc::not_member);
  EXPECT_EQ(book.may_post("nowhere", "ann", kNode, 7, undo).error().code, errc::no_such_room);
  EXPECT_TRUE(undo.empty());

  for (int i = 0; i < 3; ++i) {
    auto room = book.may_post("den", "ann", as("ann"), 7, undo);
    ASSERT_TRUE(room);
    ++(*room)->last_seq;
  }
  ASSERT_EQ(undo.size(), 1u);  // once for the room in batch 7
  EXPECT_EQ(undo[0].kind, RoomBook::Undo::Kind::reset_seq);
  EXPECT_EQ(undo[0].seq, 0u);
  ASSERT_TRUE(book.may_post("den", "ann", as("ann"), 8, undo));
  EXPECT_EQ(undo.size(), 2u);  // and once in batch 8
  EXPECT_EQ(undo[1].seq, 3u);
}

TEST(RoomBook, ARoomWithOtherMembersKeepsAnOwner) {
  RoomBook book(10);
  Batch b;
  ASSERT_EQ(code(book, t::CreateRoom{"den", "ann"}, as("ann"), b), errc::ok);
  // Alone, the last owner may leave (the room stays, empty).
  ASSERT_EQ(code(book, t::CreateRoom{"solo", "ann"}, as("ann"), b), errc::ok);
  EXPECT_EQ(code(book, t::Leave{"solo", "ann"}, as("ann"), b), errc::ok);
  ASSERT_EQ(code(book, t::Join{"den", "bob"}, as("bob"), b), errc::ok);
  EXPECT_EQ(code(book, t::Leave{"den", "ann"}, as("ann"), b), errc::forbidden);
  EXPECT_EQ(code(book, t::SetRole{"den", "ann", Role::member}, as("ann"), b), errc::forbidden);
  EXPECT_EQ(code(book, t::RemoveMember{"den", "ann"}, kNode, b), errc::forbidden);
  ASSERT_EQ(code(book, t::SetRole{"den", "bob", Role::owner}, as("ann"), b), errc::ok);
  EXPECT_EQ(code(book, t::Leave{"den", "ann"}, as("ann"), b), errc::ok);
  EXPECT_EQ(book.find("den")->members.count("ann"), 0u);
}

TEST(RoomBook, AUserAnOwnerRemovedIsNotReadmittedByAnInvitationOnlyByAnOwner) {
  RoomBook book(10);
  Batch b;
  ASSERT_EQ(code(book, t::CreateRoom{"den", "ann", true}, as("ann"), b), errc::ok);
  ASSERT_EQ(code(book, t::AddMember{"den", "bob", Role::member}, as("ann"), b), errc::ok);
  ASSERT_EQ(code(book, t::RemoveMember{"den", "bob"}, as("ann"), b), errc::ok);
  EXPECT_EQ(book.find("den")->removed.count("bob"), 1u);
  EXPECT_EQ(code(book, t::Join{"den", "bob", true}, kNode, b), errc::no_such_room);
  EXPECT_EQ(book.find("den")->members.count("bob"), 0u);
  ASSERT_EQ(code(book, t::AddMember{"den", "bob", Role::member}, as("ann"), b), errc::ok);
  EXPECT_EQ(book.find("den")->removed.count("bob"), 0u);
  // Leaving of one's own accord is not a removal: the invitation works again.
  ASSERT_EQ(code(book, t::Leave{"den", "bob"}, as("bob"), b), errc::ok);
  EXPECT_EQ(code(book, t::Join{"den", "bob", true}, kNode, b), errc::ok);
}

TEST(RoomBook, ABannedUserIsNoLongerAMemberAndCannotJoinOrBeAddedUntilUnbanned) {
  RoomBook book(10);
  Batch setup;
  ASSERT_EQ(code(book, t::CreateRoom{"den", "ann"}, as("ann"), setup), errc::ok);
  ASSERT_EQ(code(book, t::AddMember{"den", "bob", Role::member}, as("ann"), setup), errc::ok);

  Batch b;
  auto banned = book.apply(t::Ban{"den", "bob"}, as("ann"), 1000, b.changes());
  ASSERT_TRUE(banned);
  EXPECT_TRUE(std::get<t::BanOk>(*banned).banned);
  const RoomBook::Room& den = *book.find("den");
  EXPECT_EQ(den.members.count("bob"), 0u);
  EXPECT_EQ(den.banned.count("bob"), 1u);
  EXPECT_EQ(den.removed.count("bob"), 0u);
  EXPECT_EQ(book.rooms_of("bob"), 0u);
  // Its membership ends as a removal's does: one record for the store, a leave for presence.
  ASSERT_EQ(b.records.size(), 1u);
  const auto& record = std::get<p::RemoveMember>(b.records[0]);
  EXPECT_EQ(std::tie(record.room, record.user, record.remember, record.ban),
            std::make_tuple(std::string("den"), std::string("bob"), true, true));
  ASSERT_EQ(b.presence.size(), 1u);
  EXPECT_EQ(b.presence[0].user, "bob");
  EXPECT_FALSE(b.presence[0].joined);

  // Banned again: false, nothing written.
  Batch again;
  auto twice = book.apply(t::Ban{"den", "bob"}, as("ann"), 1000, again.changes());
  ASSERT_TRUE(twice);
  EXPECT_FALSE(std::get<t::BanOk>(*twice).banned);
  EXPECT_TRUE(again.records.empty());
  EXPECT_TRUE(again.undo.empty());

  // No join of his, plain or invited, by him or a service; no owner adds him.
  Batch refused;
  auto join = book.apply(t::Join{"den", "bob"}, as("bob"), 1000, refused.changes());
  ASSERT_FALSE(join);
  EXPECT_EQ(join.error().code, errc::forbidden);
  EXPECT_EQ(join.error().message, "'bob' is banned from 'den': an owner must unban them first");
  EXPECT_EQ(code(book, t::Join{"den", "bob", true}, kNode, refused), errc::forbidden);
  EXPECT_EQ(code(book, t::Join{"den", "bob"}, kNode, refused), errc::forbidden);
  auto add = book.apply(t::AddMember{"den", "bob", Role::member}, as("ann"), 1000, refused.changes());
  ASSERT_FALSE(add);
  EXPECT_EQ(add.error().code, errc::forbidden);
  EXPECT_NE(add.error().message.find("unban them first"), std::string::npos) << add.error().message;
  EXPECT_EQ(code(book, t::AddMember{"den", "bob", Role::member}, kNode, refused), errc::forbidden);
  std::vector<RoomBook::Undo> undo;
  auto post = book.may_post("den", "bob", as("bob"), 1, undo);
  ASSERT_FALSE(post);
  EXPECT_EQ(post.error().code, errc::not_member);
  EXPECT_EQ(code(book, t::SetRole{"den", "bob", Role::owner}, as("ann"), refused), errc::not_member);
  EXPECT_TRUE(refused.records.empty());
  EXPECT_TRUE(refused.undo.empty());

  // A user who never was a member may be banned too.
  Batch stranger;
  ASSERT_EQ(code(book, t::Ban{"den", "cy"}, kNode, stranger), errc::ok);
  EXPECT_TRUE(stranger.presence.empty());
  EXPECT_EQ(code(book, t::Join{"den", "cy"}, as("cy"), stranger), errc::forbidden);

  // Unbanned: no longer banned, not a member again; he stands as a removal leaves a user.
  Batch lift;
  auto unbanned = book.apply(t::Unban{"den", "bob"}, as("ann"), 1000, lift.changes());
  ASSERT_TRUE(unbanned);
  EXPECT_TRUE(std::get<t::UnbanOk>(*unbanned).unbanned);
  EXPECT_EQ(den.banned.count("bob"), 0u);
  EXPECT_EQ(den.members.count("bob"), 0u);
  EXPECT_EQ(den.removed.count("bob"), 1u);
  EXPECT_TRUE(lift.presence.empty());
  ASSERT_EQ(lift.records.size(), 1u);
  EXPECT_TRUE(std::get<p::RemoveMember>(lift.records[0]).remember);
  EXPECT_FALSE(std::get<p::RemoveMember>(lift.records[0]).ban);
  Batch none;
  auto not_banned = book.apply(t::Unban{"den", "bob"}, as("ann"), 1000, none.changes());
  ASSERT_TRUE(not_banned);
  EXPECT_FALSE(std::get<t::UnbanOk>(*not_banned).unbanned);
  EXPECT_TRUE(none.records.empty());
  // Public room: he may join again himself.
  EXPECT_EQ(code(book, t::Join{"den", "bob"}, as("bob"), lift), errc::ok);
  EXPECT_EQ(den.removed.count("bob"), 0u);
}

TEST(RoomBook, ABanInAPrivateRoomKeepsOutInvitationsAndAnUnbanDoesNotReadmit) {
  RoomBook book(10);
  Batch b;
  ASSERT_EQ(code(book, t::CreateRoom{"vault", "ann", true}, as("ann"), b), errc::ok);
  ASSERT_EQ(code(book, t::AddMember{"vault", "bob", Role::member}, as("ann"), b), errc::ok);
  ASSERT_EQ(code(book, t::Ban{"vault", "bob"}, as("ann"), b), errc::ok);
  EXPECT_EQ(code(book, t::Join{"vault", "bob"}, as("bob"), b), errc::no_such_room) << "invisible to him again";
  EXPECT_EQ(code(book, t::Join{"vault", "bob", true}, kNode, b), errc::forbidden) << "the token's invitation";
  EXPECT_EQ(code(book, t::Ban{"vault", "cy"}, as("bob"), b), errc::no_such_room);
  ASSERT_EQ(code(book, t::Unban{"vault", "bob"}, as("ann"), b), errc::ok);
  // Lifted only: the invitation is refused as after a removal, until an owner adds him.
  EXPECT_EQ(code(book, t::Join{"vault", "bob", true}, kNode, b), errc::no_such_room);
  ASSERT_EQ(code(book, t::AddMember{"vault", "bob", Role::member}, as("ann"), b), errc::ok);
  EXPECT_EQ(book.find("vault")->members.count("bob"), 1u);
}

TEST(RoomBook, OnlyOwnersBanAndNeverTheLastOwnerNorThemselves) {
  RoomBook book(10);
  Batch setup;
  ASSERT_EQ(code(book, t::CreateRoom{"den", "ann"}, as("ann"), setup), errc::ok);
  ASSERT_EQ(code(book, t::Join{"den", "bob"}, as("bob"), setup), errc::ok);
  Batch bad;
  EXPECT_EQ(code(book, t::Ban{"nowhere", "bob"}, as("ann"), bad), errc::no_such_room);
  EXPECT_EQ(code(book, t::Ban{"nowhere", "bob"}, kNode, bad), errc::no_such_room);
  auto member = book.apply(t::Ban{"den", "ann"}, as("bob"), 1000, bad.changes());
  ASSERT_FALSE(member);
  EXPECT_EQ(member.error().code, errc::forbidden);
  EXPECT_EQ(member.error().message, "only an owner of 'den' may ban users; 'bob' is a member");
  EXPECT_EQ(code(book, t::Unban{"den", "ann"}, as("bob"), bad), errc::forbidden);
  EXPECT_EQ(code(book, t::Ban{"den", "cy"}, as("cy"), bad), errc::forbidden) << "a stranger";
  EXPECT_EQ(code(book, t::Ban{"den", "ann"}, as("ann"), bad), errc::forbidden) << "herself";
  EXPECT_EQ(code(book, t::Ban{"den", "ann"}, kNode, bad), errc::forbidden) << "the last owner, by a service too";
  EXPECT_TRUE(bad.records.empty());
  EXPECT_TRUE(bad.undo.empty());
  EXPECT_TRUE(book.find("den")->banned.empty());
  EXPECT_EQ(book.find("den")->members.size(), 2u);
  // One owner may ban another, as they may remove one.
  ASSERT_EQ(code(book, t::SetRole{"den", "bob", Role::owner}, as("ann"), setup), errc::ok);
  EXPECT_EQ(code(book, t::Ban{"den", "ann"}, as("bob"), setup), errc::ok);
  EXPECT_EQ(book.find("den")->members.count("ann"), 0u);
}

TEST(RoomBook, AUserIsInAtMostTheRoomsTheLimitAllows) {
  RoomBook book(2);
  Batch b;
  ASSERT_EQ(code(book, t::CreateRoom{"a", "ann"}, as("ann"), b), errc::ok);
  ASSERT_EQ(code(book, t::CreateRoom{"b", "ann"}, as("ann"), b), errc::ok);
  ASSERT_EQ(code(book, t::CreateRoom{"c", "bob"}, as("bob"), b), errc::ok);
  EXPECT_EQ(book.rooms_of("ann"), 2u);
  auto full = book.apply(t::CreateRoom{"d", "ann"}, as("ann"), 1000, b.changes());
  ASSERT_FALSE(full);
  EXPECT_EQ(full.error().code, errc::limit_reached);
  EXPECT_NE(full.error().message.find("max_rooms_per_user"), std::string::npos);
  EXPECT_EQ(code(book, t::Join{"c", "ann"}, as("ann"), b), errc::limit_reached);
  EXPECT_EQ(code(book, t::AddMember{"c", "ann", Role::member}, as("bob"), b), errc::limit_reached);
  EXPECT_EQ(book.find("d"), nullptr);
  // Deleting a room frees its members' places.
  ASSERT_EQ(code(book, t::DeleteRoom{"a"}, as("ann"), b), errc::ok);
  EXPECT_EQ(book.rooms_of("ann"), 1u);
  EXPECT_EQ(code(book, t::Join{"c", "ann"}, as("ann"), b), errc::ok);
}

TEST(RoomBook, DeletingARoomTellsPresenceOfEveryMemberAndForgetsIt) {
  RoomBook book(10);
  Batch b;
  ASSERT_EQ(code(book, t::CreateRoom{"den", "ann"}, as("ann"), b), errc::ok);
  ASSERT_EQ(code(book, t::Join{"den", "bob"}, as("bob"), b), errc::ok);
  Batch del;
  ASSERT_EQ(code(book, t::DeleteRoom{"den"}, as("ann"), del), errc::ok);
  EXPECT_EQ(book.find("den"), nullptr);
  EXPECT_EQ(book.rooms_of("bob"), 0u);
  ASSERT_EQ(del.presence.size(), 2u);
  EXPECT_FALSE(del.presence[0].joined);
  EXPECT_FALSE(del.presence[1].joined);
  ASSERT_EQ(del.records.size(), 1u);
  EXPECT_EQ(std::get<p::DeleteRoom>(del.records[0]).room, "den");
}

TEST(RoomBook, UndoTakesAFailedBatchBackExactly) {
  // A book with some history, then a batch of every kind of change, in random orders
  // and mixes; undo() must leave the book exactly as before the batch.
  const std::vector<std::string> users = {"ann", "bob", "cy", "dee"};
  std::mt19937 rng(7);
  std::set<RoomBook::Undo::Kind> kinds;  // every kind of change is taken back at least once
  int exercised = 0;
  for (int round = 0; round < 200; ++round) {
    RoomBook book(3);
    Batch setup;
    ASSERT_EQ(code(book, t::CreateRoom{"den", "ann", true}, as("ann"), setup), errc::ok);
    ASSERT_EQ(code(book, t::CreateRoom{"hall", "bob"}, as("bob"), setup), errc::ok);
    ASSERT_EQ(code(book, t::AddMember{"den", "bob", Role::member}, as("ann"), setup), errc::ok);
    ASSERT_EQ(code(book, t::AddMember{"den", "cy", Role::reader}, as("ann"), setup), errc::ok);
    ASSERT_EQ(code(book, t::RemoveMember{"den", "cy"}, as("ann"), setup), errc::ok);
    ASSERT_EQ(code(book, t::Join{"hall", "dee"}, as("dee"), setup), errc::ok);
    ASSERT_EQ(code(book, t::Ban{"hall", "cy"}, as("bob"), setup), errc::ok);
    book.find("den")->last_seq = book.find("den")->durable_seq = 5;
    const std::string before = dump(book, users);

    Batch batch;
    const std::vector<std::string> rooms = {"den", "hall", "new"};
    auto pick = [&](const std::vector<std::string>& from) { return from[rng() % from.size()]; };
    for (int i = 0; i < 12; ++i) {
      const std::string room = pick(rooms), user = pick(users), by = pick(users);
      const Role role = static_cast<Role>(rng() % 3);
      switch (rng() % 10) {
        case 0: (void)code(book, t::CreateRoom{room, by, rng() % 2 == 0}, as(by), batch); break;
        case 1: (void)code(book, t::Join{room, user, rng() % 2 == 0}, rng() % 2 ? as(user) : kNode, batch); break;
        case 2: (void)code(book, t::Leave{room, user}, as(user), batch); break;
        case 3: (void)code(book, t::AddMember{room, user, role}, rng() % 2 ? as(by) : kNode, batch); break;
        case 4: (void)code(book, t::RemoveMember{room, user}, rng() % 2 ? as(by) : kNode, batch); break;
        case 5: (void)code(book, t::SetRole{room, user, role}, kNode, batch); break;
        case 6: (void)code(book, t::DeleteRoom{room}, rng() % 2 ? as(by) : kNode, batch); break;
        case 7:
          if (auto r = book.may_post(room, user, kNode, 1, batch.undo)) ++(*r)->last_seq;
          break;
        case 8: (void)code(book, t::Ban{room, user}, rng() % 2 ? as(by) : kNode, batch); break;
        case 9: (void)code(book, t::Unban{room, user}, rng() % 2 ? as(by) : kNode, batch); break;
      }
    }
    for (const auto& u : batch.undo) kinds.insert(u.kind);
    exercised += batch.undo.empty() ? 0 : 1;
    book.undo(batch.undo);
    ASSERT_EQ(dump(book, users), before) << "round " << round;
  }
  EXPECT_GT(exercised, 150);
  EXPECT_EQ(kinds.size(), 8u);
}

TEST(RoomBook, AReplicaFollowsThePrimarysRecordsAndARestartLoadsTheStore) {
  RoomBook book(10);
  book.follow(p::CreateRoom{"den", "ann", 500, true});
  book.follow(p::AddMember{"den", "ann", Role::owner});
  book.follow(p::AddMember{"den", "bob", Role::member});
  book.follow(p::AddMember{"nowhere", "bob", Role::member});  // a room it does not have: ignored
  book.follow(p::StoredMessage{"den", 3, "ann", 600, "hi", "c1", {}});
  EXPECT_EQ(book.rooms_of("bob"), 1u);
  EXPECT_EQ(book.find("den")->last_seq, 3u);
  EXPECT_EQ(book.find("nowhere"), nullptr);
  book.follow(p::AddMember{"den", "bob", Role::owner});  // a role change
  EXPECT_EQ(book.find("den")->members.at("bob"), Role::owner);
  EXPECT_EQ(book.rooms_of("bob"), 1u);
  book.follow(p::RemoveMember{"den", "bob", true});
  EXPECT_EQ(book.find("den")->removed.count("bob"), 1u);
  EXPECT_EQ(book.rooms_of("bob"), 0u);
  // A ban, as the store keeps it: banned, not removed; an unban makes it a removal.
  book.follow(p::AddMember{"den", "cy", Role::member});
  book.follow(p::RemoveMember{"den", "cy", true, true});
  book.follow(p::RemoveMember{"den", "bob", true, true});
  EXPECT_EQ(book.find("den")->members.count("cy"), 0u);
  EXPECT_EQ(book.find("den")->banned, (std::set<std::string>{"bob", "cy"}));
  EXPECT_EQ(book.find("den")->removed.count("bob"), 0u);
  EXPECT_EQ(book.rooms_of("cy"), 0u);
  book.follow(p::RemoveMember{"den", "bob", true});
  EXPECT_EQ(book.find("den")->banned.count("bob"), 0u);
  EXPECT_EQ(book.find("den")->removed.count("bob"), 1u);
  book.follow(p::DeleteRoom{"den"});
  EXPECT_EQ(book.find("den"), nullptr);
  EXPECT_EQ(book.rooms_of("ann"), 0u);

  p::RoomState state;
  state.creator = "cy";
  state.created_ms = 9;
  state.last_seq = 42;
  state.members = {{"cy", Role::owner}, {"dee", Role::reader}};
  state.removed = {"eve"};
  state.banned = {"fay"};
  book.load("hall", state);
  const RoomBook::Room* hall = book.find("hall");
  ASSERT_NE(hall, nullptr);
  EXPECT_EQ(hall->last_seq, 42u);
  EXPECT_EQ(hall->durable_seq, 42u);
  EXPECT_EQ(book.rooms_of("dee"), 1u);
  EXPECT_EQ(hall->removed.count("eve"), 1u);
  EXPECT_EQ(hall->banned.count("fay"), 1u);
}

TEST(RoomBook, AReadMarkerMovesOnlyForwardForAMemberUpToTheLastSeqOnceStored) {
  RoomBook book(10);
  RoomBook::Room* den = &den_and_vault(book, 10);  // ten messages stored

  // Bad input: nothing written.
  Batch bad;
  EXPECT_EQ(code(book, t::MarkRead{"den", "bob", 11}, as("bob"), bad), errc::bad_field) << "past the last seq";
  EXPECT_EQ(code(book, t::MarkRead{"den", "cat", 3}, as("cat"), bad), errc::not_member);
  EXPECT_EQ(code(book, t::MarkRead{"den", "bob", 3}, as("ann"), bad), errc::forbidden) << "for someone else";
  EXPECT_EQ(code(book, t::MarkRead{"vault", "bob", 0}, as("bob"), bad), errc::no_such_room) << "private: invisible";
  EXPECT_EQ(code(book, t::MarkRead{"nowhere", "bob", 0}, as("bob"), bad), errc::no_such_room);
  EXPECT_TRUE(bad.records.empty());

  // Forward: one record; the marker moves once it is stored, and not back.
  Batch fwd;
  auto r = book.apply(t::MarkRead{"den", "bob", 7}, as("bob"), 1000, fwd.changes());
  ASSERT_TRUE(r);
  EXPECT_EQ(std::get<t::MarkReadOk>(*r).seq, 7u);
  EXPECT_EQ(std::get<t::MarkReadOk>(*r).unread, 3u);
  ASSERT_EQ(fwd.records.size(), 1u);
  EXPECT_EQ(std::get<p::MarkRead>(fwd.records[0]).seq, 7u);
  EXPECT_FALSE(den->read.count("bob")) << "not before it is stored";
  EXPECT_EQ(book.mark_read("den", "bob", 7), 7u);
  EXPECT_EQ(book.mark_read("den", "bob", 5), 7u) << "never back";

  // At or below the marker: nothing to store, the reply says where it is.
  Batch back;
  r = book.apply(t::MarkRead{"den", "bob", 4}, as("bob"), 1000, back.changes());
  ASSERT_TRUE(r);
  EXPECT_TRUE(back.records.empty());
  EXPECT_EQ(std::get<t::MarkReadOk>(*r).seq, 7u);

  // A stored message moves its sender's marker and becomes the room's newest.
  den->last_seq = den->durable_seq = 11;
  book.stored("den", "ann", 11, 5555, std::string(150, 'z'));
  auto ann = RoomBook::summary("den", *den, "ann");
  EXPECT_EQ(ann.read_seq, 11u);
  EXPECT_EQ(ann.unread, 0u);
  EXPECT_EQ(ann.role, Role::owner);
  auto bob = RoomBook::summary("den", *den, "bob");
  EXPECT_EQ(bob.last_seq, 11u);
  EXPECT_EQ(bob.last_ts_ms, 5555u);
  EXPECT_EQ(bob.last_user, "ann");
  EXPECT_EQ(bob.preview, std::string(100, 'z')) << "the start of the body";
  EXPECT_EQ(bob.read_seq, 7u);
  EXPECT_EQ(bob.unread, 4u);
  EXPECT_EQ(bob.role, Role::member);
}

TEST(RoomBook, APreviewIsCutBetweenCharactersAndSummariesSortByNewestActivity) {
  RoomBook book(10);
  Batch b;
  for (const char* name : {"a", "b", "c"}) ASSERT_TRUE(book.apply(t::CreateRoom{name, "ann"}, as("ann"), 100, b.changes()));
  RoomBook::Room* a = book.find("a");
  a->last_seq = a->durable_seq = 1;
  // 99 ASCII bytes, then a two-byte character that would end past byte 100.
  book.stored("a", "ann", 1, 300, std::string(99, 'x') + "\xc3\xa9" + "more");
  EXPECT_EQ(RoomBook::summary("a", *a, "ann").preview, std::string(99, 'x'));
  RoomBook::Room* c = book.find("c");
  c->last_seq = c->durable_seq = 1;
  book.stored("c", "ann", 1, 500, "hi");
  std::vector<t::RoomSummary> all;
  for (const auto& [name, room] : book.rooms()) all.push_back(RoomBook::summary(name, room, "ann"));
  RoomBook::sort_summaries(all);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].room, "c");
  EXPECT_EQ(all[1].room, "a");
  EXPECT_EQ(all[2].room, "b") << "no message: the room's creation time (100)";
  EXPECT_EQ(all[2].last_ts_ms, 100u);
}

TEST(RoomBook, AReplicaMovesMarkersAsThePrimarysRecordsSayAndARestartLoadsThem) {
  RoomBook replica(10);
  replica.follow(p::CreateRoom{"den", "ann", 1, false});
  replica.follow(p::AddMember{"den", "ann", Role::owner});
  replica.follow(p::AddMember{"den", "bob", Role::member});
  replica.follow(p::StoredMessage{"den", 1, "ann", 10, "one", "c1"});
  replica.follow(p::StoredMessage{"den", 2, "bob", 20, "two", "c2"});
  replica.follow(p::MarkRead{"den", "ann", 2});
  replica.follow(p::MarkRead{"den", "ann", 1});  // an older one changes nothing
  RoomBook::Room* den = replica.find("den");
  EXPECT_EQ(den->read.at("ann"), 2u);
  EXPECT_EQ(den->read.at("bob"), 2u) << "their own message";

  p::RoomState state;
  state.creator = "ann";
  state.last_seq = 9;
  state.members = {{"ann", Role::owner}, {"bob", Role::member}};
  state.read = {{"bob", 4}};
  state.last_ts_ms = 77;
  state.last_user = "ann";
  state.preview = "nine";
  RoomBook restarted(10);
  restarted.load("den", state);
  auto bob = RoomBook::summary("den", *restarted.find("den"), "bob");
  EXPECT_EQ(bob.unread, 5u);
  EXPECT_EQ(bob.preview, "nine");
  EXPECT_EQ(bob.last_ts_ms, 77u);
  EXPECT_EQ(RoomBook::summary("den", *restarted.find("den"), "ann").unread, 9u) << "no marker: everything unread";
}

TEST(RoomBook, MentionsOfMembersAreCountedUntilTheMarkerPassesThem) {
  RoomBook book(10);
  RoomBook::Room* den = &den_and_vault(book, 0);

  // Only members may be mentioned; the error names the first who is not.
  EXPECT_FALSE(RoomBook::check_mentions(*den, "den", {"bob", "ann"}, "field 'mentions'"));
  auto bad = RoomBook::check_mentions(*den, "den", {"bob", "zed"}, "field 'mentions'");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->code, errc::bad_field);
  EXPECT_EQ(bad->message, "field 'mentions': 'zed' is not a member of 'den'; only members may be mentioned");

  // Three messages mention bob (one of them also its sender, ann, who is not counted).
  for (std::uint64_t seq = 1; seq <= 5; ++seq) {
    den->last_seq = den->durable_seq = seq;
    if (seq != 2 && seq != 4) book.mentioned("den", "ann", seq, {"bob", "ann"});
    book.stored("den", "ann", seq, 100 * seq, "m");
  }
  EXPECT_EQ(RoomBook::summary("den", *den, "bob").mentions, 3u);
  EXPECT_EQ(RoomBook::summary("den", *den, "ann").mentions, 0u) << "her own mention";
  // Not acknowledged yet (a replica ahead of its primary's commit): not counted.
  den->last_seq = 6;
  book.mentioned("den", "ann", 6, {"bob"});
  EXPECT_EQ(RoomBook::summary("den", *den, "bob").mentions, 3u);
  den->durable_seq = 6;
  EXPECT_EQ(RoomBook::summary("den", *den, "bob").mentions, 4u);
  // The marker passes them: 1 and 3 are read, then all.
  book.mark_read("den", "bob", 3);
  EXPECT_EQ(RoomBook::summary("den", *den, "bob").mentions, 2u);
  EXPECT_EQ(RoomBook::summary("den", *den, "bob").unread, 3u);
  book.mark_read("den", "bob", 6);
  EXPECT_EQ(RoomBook::summary("den", *den, "bob").mentions, 0u);
  EXPECT_FALSE(den->mentioned.count("bob")) << "nothing kept once read";
  // A user's own message moves their marker past what mentioned them.
  book.mentioned("den", "ann", 7, {"bob"});
  den->last_seq = den->durable_seq = 7;
  book.stored("den", "ann", 7, 700, "m");
  den->last_seq = den->durable_seq = 8;
  book.stored("den", "bob", 8, 800, "re");
  EXPECT_EQ(RoomBook::summary("den", *den, "bob").mentions, 0u);

  // A replica follows the records (a message's mentions, then a marker), and a restart
  // loads what the store kept.
  RoomBook replica(10);
  replica.follow(p::CreateRoom{"den", "ann", 1000});
  replica.follow(p::AddMember{"den", "bob"});
  p::StoredMessage m{"den", 1, "ann", 10, "hi @bob", "c1"};
  m.mentions = {"bob"};
  replica.follow(m);
  replica.find("den")->durable_seq = 1;
  EXPECT_EQ(RoomBook::summary("den", *replica.find("den"), "bob").mentions, 1u);
  replica.follow(p::MarkRead{"den", "bob", 1});
  EXPECT_EQ(RoomBook::summary("den", *replica.find("den"), "bob").mentions, 0u);
  p::RoomState state;
  state.last_seq = 9;
  state.members = {{"bob", Role::member}};
  state.read = {{"bob", 4}};
  state.mentions = {{"bob", {5, 9}}};
  RoomBook restarted(10);
  restarted.load("den", state);
  EXPECT_EQ(RoomBook::summary("den", *restarted.find("den"), "bob").mentions, 2u);
}

TEST(RoomBook, SummariesArePagedAfterACursorUpToALimit) {
  auto summary = [](std::string room, std::uint64_t ts) {
    t::RoomSummary s;
    s.room = std::move(room);
    s.last_ts_ms = ts;
    return s;
  };
  auto page = [&](std::uint32_t limit, std::optional<t::SummaryCursor> after, bool summarized = true) {
    t::RoomsOk ok{{"a", "b", "c", "d"}, {}, {summary("a", 10), summary("b", 30), summary("c", 30), summary("d", 20)}};
    RoomBook::page_summaries(ok, t::ListRooms{"ann", limit, std::move(after)}, summarized);
    std::string out;
    for (const auto& s : ok.summaries) out += s.room;
    out += ok.more ? "+" : ".";
    for (const auto& r : ok.rooms) out += r;
    return out;
  };
  EXPECT_EQ(page(0, std::nullopt), "bcda.abcd") << "newest first, then by name; no paging asked";
  EXPECT_EQ(page(2, std::nullopt), "bc+bc");
  EXPECT_EQ(page(2, t::SummaryCursor{30, "c"}), "da.ad");
  EXPECT_EQ(page(1, t::SummaryCursor{30, "b"}), "c+c") << "the same time: by name";
  EXPECT_EQ(page(5, t::SummaryCursor{10, "a"}), ".");
  EXPECT_EQ(page(2, std::nullopt, false), "bcda.abcd") << "no summaries asked: no paging";
}

TEST(RoomBook, ReadMarkersAreSharedOnlyWhereAnOwnerMadeThemPublic) {
  RoomBook book(10);
  RoomBook::Room* den = &den_and_vault(book, 9);
  book.mark_read("den", "bob", 4);

  // Private by default: members are refused, a service for the node is not.
  auto hidden = book.read_markers("den", as("bob"));
  ASSERT_FALSE(hidden);
  EXPECT_EQ(hidden.error().code, errc::forbidden);
  EXPECT_TRUE(book.read_markers("den", kNode));
  // Only an owner turns them on; once is a change, twice is not; a failed batch undoes it.
  Batch bad;
  EXPECT_EQ(code(book, t::SetReceipts{"den", true}, as("bob"), bad), errc::forbidden);
  EXPECT_EQ(code(book, t::SetReceipts{"vault", true}, as("bob"), bad), errc::no_such_room);
  EXPECT_TRUE(bad.records.empty());
  Batch undone;
  ASSERT_TRUE(book.apply(t::SetReceipts{"den", true}, as("ann"), 1000, undone.changes()));
  EXPECT_TRUE(den->receipts);
  book.undo(undone.undo);
  EXPECT_FALSE(den->receipts);
  Batch on;
  auto r = book.apply(t::SetReceipts{"den", true}, as("ann"), 1000, on.changes());
  ASSERT_TRUE(r);
  EXPECT_TRUE(std::get<t::SetReceiptsOk>(*r).changed);
  ASSERT_EQ(on.records.size(), 1u);
  EXPECT_TRUE(std::get<p::SetReceipts>(on.records[0]).receipts);
  r = book.apply(t::SetReceipts{"den", true}, as("ann"), 1000, on.changes());
  ASSERT_TRUE(r);
  EXPECT_FALSE(std::get<t::SetReceiptsOk>(*r).changed);

  auto shown = book.read_markers("den", as("bob"));
  ASSERT_TRUE(shown) << shown.error().message;
  EXPECT_EQ(shown->markers, (std::vector<t::ReadMarker>{{"ann", 0}, {"bob", 4}}));
  auto outsider = book.read_markers("den", as("cat"));
  ASSERT_FALSE(outsider);
  EXPECT_EQ(outsider.error().code, errc::not_member);
  // A replica follows the record; a restart loads the setting.
  RoomBook replica(10);
  replica.follow(p::CreateRoom{"den", "ann", 1000});
  replica.follow(p::SetReceipts{"den", true});
  EXPECT_TRUE(replica.find("den")->receipts);
  p::RoomState state;
  state.receipts = true;
  RoomBook restarted(10);
  restarted.load("den", state);
  EXPECT_TRUE(restarted.find("den")->receipts);
}

TEST(RoomBook, ANotificationLevelIsAMembersOwnKeptAsAMarkerNobodyLists) {
  RoomBook book(10);
  RoomBook::Room* den = &den_and_vault(book, 9);  // ann (owner) and bob
  using L = t::NotifyLevel;
  EXPECT_EQ(RoomBook::notify_level(*den, "bob"), L::room_default);
  EXPECT_EQ(RoomBook::effective_notify(*den, L::room_default), L::all) << "a room of at most 10 members";
  Batch bad;
  EXPECT_EQ(code(book, t::SetNotify{"den", "bob", L::none}, as("ann"), bad), errc::forbidden) << "only their own";
  EXPECT_EQ(code(book, t::SetNotify{"den", "cat", L::none}, kNode, bad), errc::not_member);
  EXPECT_EQ(code(book, t::SetNotify{"nope", "bob", L::none}, as("bob"), bad), errc::no_such_room);
  EXPECT_TRUE(bad.records.empty());

  Batch undone;
  ASSERT_TRUE(book.apply(t::SetNotify{"den", "bob", L::none}, as("bob"), 1000, undone.changes()));
  EXPECT_EQ(RoomBook::notify_level(*den, "bob"), L::none);
  book.undo(undone.undo);
  EXPECT_EQ(RoomBook::notify_level(*den, "bob"), L::room_default) << "a failed batch undoes it";

  // Each change is one more marker value: it goes forward whatever the level.
  std::vector<std::uint64_t> values;
  for (L level : {L::none, L::all, L::mentions, L::room_default}) {
    Batch b;
    auto r = book.apply(t::SetNotify{"den", "bob", level}, as("bob"), 1000, b.changes());
    ASSERT_TRUE(r);
    EXPECT_EQ(std::get<t::SetNotifyOk>(*r).level, level);
    EXPECT_EQ(RoomBook::notify_level(*den, "bob"), level);
    ASSERT_EQ(b.records.size(), 1u);
    const auto& mark = std::get<p::MarkRead>(b.records[0]);
    EXPECT_EQ(mark.user, RoomBook::notify_key("bob"));
    values.push_back(mark.seq);
  }
  EXPECT_TRUE(std::is_sorted(values.begin(), values.end()) && values.front() < values.back());
  Batch same;
  ASSERT_TRUE(book.apply(t::SetNotify{"den", "bob", L::room_default}, as("bob"), 1000, same.changes()));
  EXPECT_TRUE(same.records.empty()) << "set as it is: nothing to store";

  // A replica follows the record; nobody sees it among the markers.
  RoomBook replica(10);
  replica.follow(p::CreateRoom{"den", "ann", 1000});
  replica.follow(p::MarkRead{"den", RoomBook::notify_key("bob"), (7u << 2) | 3u});
  EXPECT_EQ(RoomBook::notify_level(*replica.find("den"), "bob"), L::none);
  auto shown = book.read_markers("den", kNode);
  ASSERT_TRUE(shown);
  for (const auto& m : shown->markers) EXPECT_FALSE(RoomBook::reserved_marker(m.user));
  EXPECT_TRUE(RoomBook::reserved_marker(RoomBook::notify_key("bob")));
  EXPECT_FALSE(RoomBook::reserved_marker("bob"));
}
