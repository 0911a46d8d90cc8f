#include "switchboard/actors/persistence.hpp"

#include <spdlog/spdlog.h>

#include "switchboard/transport/codec.hpp"

namespace switchboard::actors {

Persistence::Persistence(persistence::HistoryStore store, PersistenceOptions options)
    : store_(std::move(store)), options_(std::move(options)) {}

void Persistence::on_message(const Inbound& in, const Now&, Effects& out) {
  if (in.frames.size() != 1) {
    spdlog::error("persistence: {}-frame message from {}", in.frames.size(), in.sender);
    return;
  }
  auto message = store::decode(in.frames[0]);
  if (!message) {
    spdlog::error("persistence: unreadable message from {}: {}", in.sender, message.error().message);
    return;
  }
  if (auto* append = std::get_if<store::Append>(&*message)) {
    waiting_.push_back(Waiting{std::string(in.sender), std::move(*append)});
  } else if (auto* read = std::get_if<store::Read>(&*message)) {
    answer_read(std::string(in.sender), *read, out);
  } else {
    spdlog::error("persistence: unexpected message from {}", in.sender);
  }
}

void Persistence::on_drained(const Now&, Effects& out) {
  if (waiting_.empty()) return;
  auto commit = [&](std::span<const persistence::Record> records) {
    auto result = store_.append_batch(records);
    ++stats_.commits;
    if (result) stats_.records += records.size();
    else ++stats_.failures;
    return result.ok() ? Error{errc::ok, {}} : result.error();
  };
  auto answer = [&](const Waiting& w, const Error& error) {
    out.reply(w.sender, store::encode(store::Appended{w.append.batch, error}));
  };

  if (waiting_.size() == 1) {
    answer(waiting_[0], commit(waiting_[0].append.records));
  } else {
    std::vector<persistence::Record> all;
    for (auto& w : waiting_)
      for (auto& r : w.append.records) all.push_back(std::move(r));
    Error error = commit(all);
    if (error.code == errc::internal) {
      // One sender broke an invariant; the others' batches must not fail with it.
      // Their records were moved into `all`, so rebuild each from its slice.
      std::size_t at = 0;
      for (auto& w : waiting_) {
        std::size_t n = w.append.records.size();
        std::vector<persistence::Record> own(std::make_move_iterator(all.begin() + at),
                                             std::make_move_iterator(all.begin() + at + n));
        at += n;
        answer(w, commit(own));
      }
    } else {
      for (auto& w : waiting_) answer(w, error);
    }
  }
  waiting_.clear();
}

void Persistence::answer_read(const std::string& sender, const store::Read& read, Effects& out) {
  Result<persistence::Page> page = [&] {
    switch (read.mode) {
      case store::Read::Mode::before: return store_.before(read.room, read.seq, read.limit);
      case store::Read::Mode::after: return store_.after(read.room, read.seq, read.limit);
      default: return store_.newest(read.room, read.limit);
    }
  }();
  transport::Reply reply{read.reply_id, transport::ErrorReply{}};
  if (!page) {
    reply.body = transport::ErrorReply{page.error().code == errc::no_such_room ? errc::no_such_room : errc::unavailable,
                                       page.error().message};
  } else {
    auto& messages = page->messages;
    // Keep the page under max_page_bytes, dropping from the far end of the direction read.
    std::size_t bytes = 0, keep = 0;
    const bool forward = read.mode == store::Read::Mode::after;
    for (std::size_t i = 0; i < messages.size(); ++i) {
      const auto& m = forward ? messages[i] : messages[messages.size() - 1 - i];
      bytes += m.body.size() + m.user.size() + m.client_msg_id.size() + 32;
      if (bytes > options_.max_page_bytes && keep > 0) break;
      ++keep;
    }
    bool more = page->more || keep < messages.size();
    if (keep < messages.size()) {
      if (forward) messages.resize(keep);
      else messages.erase(messages.begin(), messages.end() - static_cast<std::ptrdiff_t>(keep));
    }
    transport::HistoryOk ok;
    ok.more = more;
    ok.messages.reserve(messages.size());
    for (auto& m : messages)
      ok.messages.push_back({std::move(m.room), m.seq, std::move(m.user), m.ts_ms, std::move(m.body),
                             std::move(m.client_msg_id)});
    reply.body = std::move(ok);
  }
  out.reply(sender, store::encode(store::Page{read.corr, transport::encode_reply(reply)}));
}

}  // namespace switchboard::actors
