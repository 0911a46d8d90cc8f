// The history reader's backups (transport::Backup, docs/PROTOCOL.md 4.12), driven as a
// pure handler on a real store: chunks in order, a lost reply asked again, one backup
// at a time, and the refusals.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "effects_helpers.hpp"
#include "switchboard/actors/history_reader.hpp"
#include "switchboard/transport/codec.hpp"

using namespace switchboard;
using namespace switchboard::actors;
namespace fs = std::filesystem;

namespace {

class ReaderOnAStore : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) / ("history_reader_test." + std::to_string(::getpid()));
    fs::remove_all(dir_);
    persistence::StoreOptions options;
    options.dir = dir_;
    auto store = persistence::HistoryStore::open(options);
    ASSERT_TRUE(store) << store.error().message;
    store_.emplace(std::move(*store));
    std::vector<persistence::Record> batch{persistence::CreateRoom{"r", "ann", 1}, persistence::AddMember{"r", "ann"}};
    for (std::uint64_t seq = 1; seq <= 1000; ++seq)  // about 4 MB: several chunks
      batch.push_back(persistence::StoredMessage{"r", seq, "ann", seq, std::string(4000, 'x'), "c" + std::to_string(seq)});
    ASSERT_TRUE(store_->append_batch(batch));
    reader_.emplace(store_->reader(), HistoryReaderOptions{});
  }
  void TearDown() override {
    reader_.reset();
    store_.reset();
    fs::remove_all(dir_);
  }

  /// Asks the reader as chat does; the client's reply it answers with.
  transport::ReplyBody ask(std::uint64_t backup, std::uint64_t offset, std::uint64_t request, const std::string& asker = "c1") {
    Effects out;
    const std::string frame = store::encode(store::BackupRead{++corr_, request, backup, offset, asker});
    reader_->on_message(Inbound{Inbound::Via::mailbox, "chat", {frame}}, now_, out);
    auto replies = switchboard::testing::take_effects<Effects::Reply>(out);
    EXPECT_EQ(replies.size(), 1u);
    auto page = store::receive(replies.at(0).payload);
    EXPECT_TRUE(page);
    auto& p = std::get<store::Page>(*page);
    EXPECT_EQ(p.corr, corr_);
    transport::Limits limits;
    limits.max_frame = limits.max_string = 64u << 20;
    auto reply = transport::decode_reply(p.reply_frame, limits);
    EXPECT_TRUE(reply) << reply.error().message;
    EXPECT_EQ(reply->id, request);
    return reply->body;
  }

  fs::path dir_;
  std::optional<persistence::HistoryStore> store_;
  std::optional<HistoryReader> reader_;
  std::uint64_t corr_ = 0;
  Now now_{SteadyClock::now(), 1'700'000'000'000};
};

errc code_of(const transport::ReplyBody& body) {
  auto* e = std::get_if<transport::ErrorReply>(&body);
  return e ? e->code : errc::ok;
}

}  // namespace

TEST_F(ReaderOnAStore, ABackupComesInChunksAndALostReplyIsAnsweredAgain) {
  auto first = ask(0, 0, 1);
  ASSERT_EQ(code_of(first), errc::ok);
  const auto chunk = std::get<transport::BackupOk>(first);
  EXPECT_EQ(chunk.offset, 0u);
  EXPECT_EQ(chunk.data.size(), 1u << 20);
  EXPECT_FALSE(chunk.done);
  EXPECT_GE(chunk.estimate, 3u << 20);
  // The same begin again (the client's retry of a lost reply): the same backup's start.
  auto again = ask(0, 0, 1);
  ASSERT_EQ(code_of(again), errc::ok);
  EXPECT_EQ(std::get<transport::BackupOk>(again).backup, chunk.backup);
  EXPECT_EQ(std::get<transport::BackupOk>(again).data, chunk.data);
  // Another client's begin while it runs: one at a time.
  EXPECT_EQ(code_of(ask(0, 0, 1, "another client")), errc::unavailable);
  EXPECT_EQ(code_of(ask(chunk.backup + 1, 0, 3)), errc::bad_field) << "no such backup";
  EXPECT_EQ(code_of(ask(chunk.backup, 5, 4)), errc::bad_field) << "not where a chunk begins";
  EXPECT_EQ(code_of(ask(chunk.backup, 2u << 20, 4)), errc::bad_field) << "not read yet: ask in order";

  // Asked ahead, in order: each chunk in turn; the earlier ones are kept to be asked again.
  std::string copy = chunk.data;
  for (std::uint64_t k = 1; k <= 2; ++k) {
    auto ahead = ask(chunk.backup, k << 20, 4 + k);
    ASSERT_EQ(code_of(ahead), errc::ok);
    EXPECT_EQ(std::get<transport::BackupOk>(ahead).offset, k << 20);
    copy += std::get<transport::BackupOk>(ahead).data;
  }
  auto kept = ask(chunk.backup, 0, 7);
  ASSERT_EQ(code_of(kept), errc::ok);
  EXPECT_EQ(std::get<transport::BackupOk>(kept).data, chunk.data);
  std::uint64_t request = 10;
  for (bool done = false; !done;) {
    auto next = ask(chunk.backup, copy.size(), ++request);
    ASSERT_EQ(code_of(next), errc::ok) << std::get<transport::ErrorReply>(next).message;
    auto& c = std::get<transport::BackupOk>(next);
    ASSERT_EQ(c.offset, copy.size());
    // The chunk asked again (its reply lost) is the same bytes.
    auto repeat = ask(chunk.backup, c.offset, ++request);
    ASSERT_EQ(code_of(repeat), errc::ok);
    ASSERT_EQ(std::get<transport::BackupOk>(repeat).data, c.data);
    copy += c.data;
    done = c.done;
  }
  EXPECT_EQ(code_of(ask(chunk.backup, copy.size(), ++request)), errc::bad_field) << "past its end";
  EXPECT_LE(copy.size(), chunk.estimate);
  // The bytes are a store that opens and holds the room.
  const fs::path restored = dir_ / "restored";
  fs::create_directories(restored);
  std::ofstream(restored / "data.mdb", std::ios::binary).write(copy.data(), static_cast<std::streamsize>(copy.size()));
  persistence::StoreOptions options;
  options.dir = restored;
  auto opened = persistence::HistoryStore::open(options);
  ASSERT_TRUE(opened) << opened.error().message;
  auto last = opened->newest("r", 1);
  ASSERT_TRUE(last);
  ASSERT_EQ(last->messages.size(), 1u);
  EXPECT_EQ(last->messages[0].seq, 1000u);
  // Once it has ended, another may begin.
  EXPECT_EQ(code_of(ask(0, 0, ++request)), errc::ok);
}

TEST_F(ReaderOnAStore, AClientBeginningAgainDropsItsOwnBackup) {
  auto first = ask(0, 0, 1);
  ASSERT_EQ(code_of(first), errc::ok);
  auto second = ask(0, 0, 2);
  ASSERT_EQ(code_of(second), errc::ok);
  EXPECT_NE(std::get<transport::BackupOk>(second).backup, std::get<transport::BackupOk>(first).backup);
  EXPECT_EQ(code_of(ask(std::get<transport::BackupOk>(first).backup, 1u << 20, 3)), errc::bad_field) << "dropped";
  EXPECT_EQ(code_of(ask(std::get<transport::BackupOk>(second).backup, 1u << 20, 4)), errc::ok);
}

TEST_F(ReaderOnAStore, AnAbandonedBackupIsDroppedAMinuteAfterItsLastRead) {
  auto first = ask(0, 0, 1);
  ASSERT_EQ(code_of(first), errc::ok);
  const auto id = std::get<transport::BackupOk>(first).backup;
  Effects out;
  now_.steady += std::chrono::seconds(61);
  reader_->on_timer(1, now_, out);
  EXPECT_EQ(code_of(ask(id, 1u << 20, 2)), errc::bad_field) << "dropped";
  EXPECT_EQ(code_of(ask(0, 0, 3)), errc::ok) << "and a new one may begin";
}
