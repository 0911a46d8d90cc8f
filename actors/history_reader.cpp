#include "switchboard/actors/history_reader.hpp"

#include <spdlog/spdlog.h>

#include "switchboard/actors/metrics.hpp"
#include "switchboard/transport/codec.hpp"

namespace switchboard::actors {

store::Page read_page(const persistence::HistoryStore::Reader& store, const store::Read& read,
                      const HistoryReaderOptions& options) {
  persistence::PageQuery query;
  query.mode = read.mode == store::Read::Mode::before  ? persistence::PageQuery::Mode::before
               : read.mode == store::Read::Mode::after ? persistence::PageQuery::Mode::after
                                                       : persistence::PageQuery::Mode::newest;
  query.seq = read.seq;
  query.limit = read.limit;
  query.up_to = read.up_to;  // nothing stored but not acknowledged yet
  query.max_bytes = options.max_page_bytes;
  auto page = store.page_maps(read.room, query);
  std::string frame;
  if (!page) {
    const errc code = page.error().code == errc::no_such_room ? errc::no_such_room : errc::unavailable;
    frame = transport::encode_reply({read.reply_id, transport::ErrorReply{code, page.error().message}});
    if (auto* m = options.metrics) m->messages.error(code);
  } else {
    frame = transport::encode_history_reply(read.reply_id, page->count, page->maps, page->more);
  }
  if (auto* m = options.metrics) m->messages.sent(1);
  return store::Page{read.corr, std::move(frame)};
}

namespace {
/// Bytes of a backup per reply.
constexpr std::size_t kBackupChunk = 1 << 20;
/// A backup nobody has read from for this long is dropped (its copy holds a read
/// transaction, which keeps LMDB from reusing the pages freed meanwhile).
constexpr auto kBackupIdle = std::chrono::seconds(60);
constexpr std::uint64_t kBackupTimer = 1;
}  // namespace

store::Page HistoryReader::backup_chunk(const store::BackupRead& ask, const Now& now, Effects& out) {
  auto answer = [&](transport::ReplyBody body) {  // not counted as reads and pages
    return store::Page{ask.corr, transport::encode_reply({ask.reply_id, std::move(body)})};
  };
  auto refuse = [&](errc code, std::string message) { return answer(transport::ErrorReply{code, std::move(message)}); };
  const bool retried_begin = ask.backup == 0 && backup_ && backup_->asker == ask.asker &&
                             backup_->begin_request == ask.reply_id && backup_->last_offset == 0;
  if (retried_begin) {
    // the first chunk again, below
  } else if (ask.backup == 0) {  // begin one
    if (backup_ && !backup_->done && now.steady - backup_->touched < kBackupIdle)
      return refuse(errc::unavailable, "backup " + std::to_string(backup_->id) +
                                           " is being made; this node makes one at a time (an abandoned one is "
                                           "dropped 60 s after its last read)");
    backup_.reset();
    auto stream = store_.backup();
    if (!stream) return refuse(stream.error().code, stream.error().message);
    if (next_backup_ == 0) next_backup_ = now.wall_ms;
    backup_.emplace();
    backup_->id = next_backup_++;
    backup_->asker = ask.asker;
    backup_->begin_request = ask.reply_id;
    backup_->stream = std::move(*stream);
    backup_->estimate = store_.used_bytes();
    spdlog::info("history reader: backup {} begun (the store uses {} bytes)", backup_->id, backup_->estimate);
  } else if (!backup_ || backup_->id != ask.backup) {
    return refuse(errc::bad_field, "field 'backup': no backup " + std::to_string(ask.backup) +
                                       " on this node (it was dropped after 60 s without a read, or the node "
                                       "restarted): begin a new one");
  } else if (ask.offset != backup_->last_offset) {  // the same offset: the last chunk again
    const std::uint64_t next = backup_->last_offset + backup_->last.size();
    if (ask.offset != next)
      return refuse(errc::bad_field, "field 'offset': backup " + std::to_string(ask.backup) + " is at byte " +
                                         std::to_string(next) + ", not " + std::to_string(ask.offset));
    if (backup_->done)
      return refuse(errc::bad_field, "field 'offset': backup " + std::to_string(ask.backup) + " ended at byte " +
                                         std::to_string(next));
    backup_->last_offset = next;
    backup_->last.clear();
  }
  RunningBackup& b = *backup_;
  b.touched = now.steady;
  if (!timer_set_) {
    timer_set_ = true;
    out.start_timer(kBackupTimer, now.steady + kBackupIdle);
  }
  if (b.last.empty() && !b.done) {  // not a repeat: the next bytes of the copy
    auto ended = b.stream->read(b.last, kBackupChunk);
    if (!ended) {
      spdlog::warn("history reader: backup {} failed at byte {}: {}", b.id, b.last_offset, ended.error().message);
      auto error = ended.error();
      backup_.reset();
      return refuse(error.code, error.message);
    }
    b.done = *ended;
    if (b.done) {
      spdlog::info("history reader: backup {} made: {} bytes", b.id, b.stream->offset());
      b.stream.reset();  // the copy's transaction is over
    }
  }
  return answer(transport::BackupOk{b.id, b.last_offset, b.last, b.done, b.estimate});
}

void HistoryReader::on_timer(std::uint64_t id, const Now& now, Effects& out) {
  if (id != kBackupTimer) return;
  timer_set_ = false;
  if (!backup_) return;
  if (now.steady - backup_->touched >= kBackupIdle) {
    if (!backup_->done)
      spdlog::warn("history reader: backup {} dropped: no read for {} s", backup_->id,
                   std::chrono::duration_cast<std::chrono::seconds>(kBackupIdle).count());
    backup_.reset();
    return;
  }
  timer_set_ = true;
  out.start_timer(kBackupTimer, backup_->touched + kBackupIdle);
}

void HistoryReader::on_message(const Inbound& in, const Now& now, Effects& out) {
  if (in.frames.size() != 1) {
    spdlog::error("history reader: {}-frame message from {}", in.frames.size(), in.sender);
    return;
  }
  auto message = store::receive(in.frames[0]);  // only chat of this node sends here
  if (auto* ask = message ? std::get_if<store::BackupRead>(&*message) : nullptr) {
    out.reply(std::string(in.sender), store::encode(backup_chunk(*ask, now, out)));
    return;
  }
  auto* read = message ? std::get_if<store::Read>(&*message) : nullptr;
  if (read == nullptr) {
    spdlog::error("history reader: {} from {}", message ? "a message that is not a read" : message.error().message,
                  in.sender);
    return;
  }
  if (auto* m = options_.metrics) m->messages.received(1);
  out.reply(std::string(in.sender), store::encode(read_page(store_, *read, options_)));
}

}  // namespace switchboard::actors
