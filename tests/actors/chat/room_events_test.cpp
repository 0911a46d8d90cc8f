// The membership and room events a room change makes (actors/chat/room_events.hpp), and
// the room book's events logs (common/event_rooms.hpp): what a webhook of membership and
// room events POSTs (docs/WEBHOOKS.md), written with the change, taken back with it.
#include <gtest/gtest.h>

#include "switchboard/actors/chat/room_book.hpp"
#include "switchboard/actors/chat/room_events.hpp"
#include "switchboard/common/event_rooms.hpp"

namespace {

using switchboard::Role;
using switchboard::actors::MembershipChange;
using switchboard::actors::RoomBook;
using switchboard::actors::room_event_type;
using switchboard::actors::room_event_user;
using switchboard::actors::room_events;
namespace t = switchboard::transport;
namespace p = switchboard::persistence;

/// The events `request`, made `as`, makes in `book` (applied there).
std::vector<std::string> events(RoomBook& book, const t::RequestBody& request, std::optional<std::string> as) {
  std::vector<p::Record> records;
  std::vector<RoomBook::Undo> undo;
  std::vector<MembershipChange> presence;
  auto r = book.apply(request, as, 5000, {records, undo, presence});
  EXPECT_TRUE(r) << (r ? "" : r.error().message);
  return room_events(request, as, records, 5000, 7);
}

}  // namespace

TEST(RoomEvents, EachChangeMakesItsEventsAndWhatChangesNothingMakesNone) {
  RoomBook book(100);
  const auto node = std::nullopt;
  auto created = events(book, t::CreateRoom{"team", "ann", true}, node);
  ASSERT_EQ(created.size(), 2u);
  EXPECT_EQ(created[0], R"({"type":"room","event":"created","room":"team","private":true,"ts":5000,"after_seq":7})");
  EXPECT_EQ(created[1],
            R"({"type":"membership","event":"joined","room":"team","user":"ann","role":"owner","ts":5000,"after_seq":7})");
  EXPECT_EQ(events(book, t::AddMember{"team", "bob", Role::reader}, "ann"),
            std::vector<std::string>{R"({"type":"membership","event":"added","room":"team","user":"bob",)"
                                     R"("role":"reader","by":"ann","ts":5000,"after_seq":7})"});
  EXPECT_TRUE(events(book, t::AddMember{"team", "bob", Role::reader}, "ann").empty()) << "a member already";
  auto role = events(book, t::SetRole{"team", "bob", Role::owner}, "ann");
  ASSERT_EQ(role.size(), 1u);
  EXPECT_NE(role[0].find(R"("event":"role","room":"team","user":"bob","role":"owner","by":"ann")"), std::string::npos);
  EXPECT_TRUE(events(book, t::SetRole{"team", "bob", Role::owner}, "ann").empty());
  auto receipts = events(book, t::SetReceipts{"team", true}, "bob");
  ASSERT_EQ(receipts.size(), 1u);
  EXPECT_NE(receipts[0].find(R"("event":"receipts","room":"team","receipts":true,"by":"bob")"), std::string::npos);
  auto retention = events(book, t::SetRetention{"team", 3600, 50, std::nullopt}, "bob");
  ASSERT_EQ(retention.size(), 1u);
  EXPECT_NE(retention[0].find(R"("max_age_s":3600,"max_messages":50,"legal_hold":false)"), std::string::npos);
  EXPECT_NE(events(book, t::Kick{"team", "bob"}, "ann")[0].find(R"("event":"kicked","room":"team","user":"bob")"),
            std::string::npos);
  EXPECT_NE(events(book, t::Ban{"team", "cy"}, "ann")[0].find(R"("event":"banned")"), std::string::npos);
  EXPECT_NE(events(book, t::Unban{"team", "cy"}, "ann")[0].find(R"("event":"unbanned")"), std::string::npos);
  EXPECT_TRUE(events(book, t::Unban{"team", "cy"}, "ann").empty()) << "not banned";
  events(book, t::AddMember{"team", "dan", Role::member}, node);
  EXPECT_NE(events(book, t::RemoveMember{"team", "dan"}, "ann")[0].find(R"("event":"removed","room":"team","user":"dan")"),
            std::string::npos);
  events(book, t::AddMember{"team", "dan", Role::member}, node);
  EXPECT_NE(events(book, t::Leave{"team", "dan"}, "dan")[0].find(R"("event":"left")"), std::string::npos);
  EXPECT_TRUE(events(book, t::MarkRead{"team", "ann", 0}, "ann").empty()) << "read state is no event";
  auto deleted = events(book, t::DeleteRoom{"team"}, "ann");
  ASSERT_EQ(deleted.size(), 1u);
  EXPECT_EQ(deleted[0], R"({"type":"room","event":"deleted","room":"team","by":"ann","ts":5000,"after_seq":7})");
}

TEST(RoomEvents, TheirKindAndUserReadBackFromTheStoredJson) {
  RoomBook book(100);
  auto created = events(book, t::CreateRoom{"team", "ann", false}, std::nullopt);
  EXPECT_EQ(room_event_type(created[0]), "room");
  EXPECT_EQ(room_event_user(created[0]), "") << "a room event is about no user";
  EXPECT_EQ(room_event_type(created[1]), "membership");
  EXPECT_EQ(room_event_user(created[1]), "ann");
  EXPECT_EQ(room_event_type("hello"), "");
}

TEST(RoomEvents, AnEventsLogIsMadeOnceHiddenFromListsAndTakenBackWithItsBatch) {
  RoomBook book(100);
  const std::string log = switchboard::events_room("team");
  EXPECT_TRUE(switchboard::is_events_room(log));
  EXPECT_EQ(switchboard::room_of_events(log), "team");
  EXPECT_FALSE(switchboard::is_events_room("team"));
  std::vector<p::Record> records;
  std::vector<RoomBook::Undo> undo;
  RoomBook::Room& room = book.events_log(log, 1, 5000, records, undo);
  ++room.last_seq;
  ASSERT_EQ(records.size(), 1u);
  const auto* create = std::get_if<p::CreateRoom>(&records[0]);
  ASSERT_TRUE(create);
  EXPECT_EQ(create->room, log);
  EXPECT_TRUE(create->private_room);
  EXPECT_FALSE(RoomBook::listed(log, *book.find(log), t::ListRooms{}, std::nullopt)) << "not even for the node";
  // The same batch again: made already, its seq noted once.
  book.events_log(log, 1, 5000, records, undo).last_seq++;
  EXPECT_EQ(records.size(), 1u);
  EXPECT_EQ(undo.size(), 2u);
  book.undo(undo);
  EXPECT_EQ(book.find(log), nullptr) << "the batch failed: the log was never made";
  // Made in one batch and written in the next: the second batch's undo keeps the log.
  std::vector<p::Record> first_records, second_records;
  std::vector<RoomBook::Undo> first_undo, second_undo;
  book.events_log(log, 1, 5000, first_records, first_undo).last_seq = 3;
  book.events_log(log, 2, 5000, second_records, second_undo).last_seq = 5;
  EXPECT_TRUE(second_records.empty());
  book.undo(second_undo);
  ASSERT_NE(book.find(log), nullptr);
  EXPECT_EQ(book.find(log)->last_seq, 3u);
}
