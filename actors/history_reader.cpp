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
  query.reader = read.reader;
  query.thread = read.thread;
  query.max_bytes = options.max_page_bytes;
  auto page = store.page_maps(read.room, query);
  std::string frame;
  if (!page) {
    const errc given = page.error().code;
    const errc code = given == errc::no_such_room || given == errc::no_such_message ? given : errc::unavailable;
    frame = transport::encode_reply({read.reply_id, transport::ErrorReply{code, page.error().message}});
    if (auto* m = options.metrics) m->messages.error(code);
  } else {
    frame = transport::encode_history_reply(read.reply_id, page->count, page->maps, page->more, page->truncated_at);
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
/// Chunks kept for clients that ask ahead (up to this many) or ask again.
constexpr std::size_t kBackupKept = 16;
}  // namespace

store::Page HistoryReader::backup_chunk(const store::BackupRead& ask, const Now& now, Effects& out) {
  auto answer = [&](transport::ReplyBody body) {  // not counted as reads and pages
    return store::Page{ask.corr, transport::encode_reply({ask.reply_id, std::move(body)})};
  };
  auto refuse = [&](errc code, std::string message) { return answer(transport::ErrorReply{code, std::move(message)}); };
  const bool retried_begin = ask.backup == 0 && backup_ && backup_->asker == ask.asker &&
                             backup_->begin_request == ask.reply_id && backup_->recent_offset == 0;
  std::uint64_t offset = ask.offset;
  if (retried_begin) {
    offset = 0;  // the first chunk again
  } else if (ask.backup == 0) {  // begin one
    // Another client's backup that is read goes on; the same client beginning again
    // gave up on its own.
    if (backup_ && !backup_->done && now.steady - backup_->touched < kBackupIdle && backup_->asker != ask.asker)
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
    offset = 0;
    spdlog::info("history reader: backup {} begun (the store uses {} bytes)", backup_->id, backup_->estimate);
  } else if (!backup_ || backup_->id != ask.backup) {
    return refuse(errc::bad_field, "field 'backup': no backup " + std::to_string(ask.backup) +
                                       " on this node (it was dropped after 60 s without a read, or the node "
                                       "restarted): begin a new one");
  }
  RunningBackup& b = *backup_;
  b.touched = now.steady;
  if (!timer_set_) {
    timer_set_ = true;
    out.start_timer(kBackupTimer, now.steady + kBackupIdle);
  }
  if (offset == b.next && !b.done) {  // the next bytes of the copy
    std::string chunk;
    auto ended = b.stream->read(chunk, kBackupChunk);
    if (!ended) {
      spdlog::warn("history reader: backup {} failed at byte {}: {}", b.id, b.next, ended.error().message);
      auto error = ended.error();
      backup_.reset();
      return refuse(error.code, error.message);
    }
    b.done = *ended;
    b.next += chunk.size();
    b.recent.push_back(std::move(chunk));
    if (b.recent.size() > kBackupKept) {
      b.recent_offset += b.recent.front().size();
      b.recent.pop_front();
    }
    if (b.done) {
      spdlog::info("history reader: backup {} made: {} bytes", b.id, b.next);
      b.stream.reset();  // the copy's transaction is over
    }
  }
  // A chunk read just now, or one of the last few asked again. Its bytes move into the
  // reply for the encoding and back (a chunk is copied once, into the frame).
  std::uint64_t at = b.recent_offset;
  for (std::size_t i = 0; i < b.recent.size(); at += b.recent[i].size(), ++i)
    if (at == offset) {
      transport::Reply reply{ask.reply_id, transport::BackupOk{b.id, at, std::move(b.recent[i]),
                                                               b.done && i + 1 == b.recent.size(), b.estimate}};
      std::string frame = transport::encode_reply(reply);
      b.recent[i] = std::move(std::get<transport::BackupOk>(reply.body).data);
      return store::Page{ask.corr, std::move(frame)};
    }
  if (b.done && offset >= b.next)
    return refuse(errc::bad_field, "field 'offset': backup " + std::to_string(b.id) + " ended at byte " +
                                       std::to_string(b.next));
  return refuse(errc::bad_field, "field 'offset': backup " + std::to_string(b.id) + " is at byte " +
                                     std::to_string(b.next) + "; it keeps its chunks from byte " +
                                     std::to_string(b.recent_offset) + ", and a chunk begins every " +
                                     std::to_string(kBackupChunk) + " bytes");
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
    out.reply(std::string(in.sender), store::hand_over(backup_chunk(*ask, now, out)));
    return;
  }
  if (auto* scan = message ? std::get_if<store::AgeScan>(&*message) : nullptr) {
    store::AgeScanned done{scan->corr, scan->room};
    if (auto bound = store_.age_bound(scan->room, scan->from, scan->limit, scan->cutoff_ms)) {
      done.seq = bound->seq;
      done.ts_ms = bound->ts_ms;
    } else {
      done.error = bound.error();
    }
    out.reply(std::string(in.sender), store::encode(done));
    return;
  }
  auto* read = message ? std::get_if<store::Read>(&*message) : nullptr;
  if (read == nullptr) {
    spdlog::error("history reader: {} from {}", message ? "a message that is not a read" : message.error().message,
                  in.sender);
    return;
  }
  if (auto* m = options_.metrics) m->messages.received(1);
  out.reply(std::string(in.sender), store::hand_over(read_page(store_, *read, options_)));
}

}  // namespace switchboard::actors
