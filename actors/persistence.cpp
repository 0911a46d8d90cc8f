#include "switchboard/actors/persistence.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

#include <spdlog/spdlog.h>

#include "switchboard/actors/history_reader.hpp"
#include "switchboard/actors/metrics.hpp"
#include "switchboard/common/file_io.hpp"

#include "switchboard/transport/codec.hpp"

namespace switchboard::actors {

Persistence::Persistence(persistence::HistoryStore store, PersistenceOptions options)
    : store_(std::move(store)), options_(std::move(options)) {
  if (!options_.copies_dir.empty()) {  // copies a stopped node was sending or receiving: of no use now
    std::error_code ec;
    std::filesystem::remove_all(options_.copies_dir, ec);
    if (ec) spdlog::warn("persistence: could not empty {}: {}", options_.copies_dir.string(), ec.message());
  }
}

namespace {

/// A copy's directory: "out-N" for one this node sends, "in-HEX" for one coming in for a
/// shard (hex: a shard's name may hold any character).
std::string incoming_name(const std::string& shard) {
  static const char* digits = "0123456789abcdef";
  std::string name = "in-";
  for (unsigned char c : shard) {
    name.push_back(digits[c >> 4]);
    name.push_back(digits[c & 15]);
  }
  return name;
}

Error file_error(const std::string& what, const std::filesystem::path& path, int err) {
  return make_error(errc::unavailable, what + " '" + path.string() + "': " + std::strerror(err));
}

}  // namespace

std::optional<store::CopyDone> Persistence::copy(store::CopyOp& op) {
  using Kind = store::CopyOp::Kind;
  store::CopyDone done;
  done.corr = op.corr;
  if (options_.copies_dir.empty()) {
    done.error = make_error(errc::unavailable, "this node keeps no copies (no data directory for them)");
    return done;
  }
  const auto dir = options_.copies_dir / (op.kind == Kind::write || op.kind == Kind::install
                                              ? incoming_name(op.shard)
                                              : "out-" + std::to_string(op.copy));
  const auto file = dir / "data.mdb";
  std::error_code ec;
  switch (op.kind) {
    case Kind::make: {
      std::filesystem::remove_all(dir, ec);
      std::filesystem::create_directories(dir, ec);
      if (ec) {
        done.error = make_error(errc::unavailable, "creating '" + dir.string() + "': " + ec.message());
        return done;
      }
      auto made = store_.copy_to(dir);
      if (made) done.size = *made;
      else done.error = made.error();
      return done;
    }
    case Kind::read: {
      std::ifstream in(file, std::ios::binary);
      if (!in) {
        done.error = file_error("reading", file, errno);
        return done;
      }
      done.data.resize(op.max);
      in.seekg(static_cast<std::streamoff>(op.offset));
      in.read(done.data.data(), static_cast<std::streamsize>(op.max));
      done.data.resize(static_cast<std::size_t>(in.gcount()));
      if (done.data.empty()) done.error = make_error(errc::unavailable, "reading '" + file.string() + "': nothing at " +
                                                                            std::to_string(op.offset));
      return done;
    }
    case Kind::drop:
      std::filesystem::remove_all(dir, ec);
      return std::nullopt;
    case Kind::write: {
      if (op.offset == 0) {
        std::filesystem::remove_all(dir, ec);
        std::filesystem::create_directories(dir, ec);
      }
      const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT, 0600);
      if (fd < 0) {
        done.error = file_error("opening", file, errno);
        return done;
      }
      const WriteAll wrote = pwrite_all(fd, op.data, op.offset);
      if (wrote.error != 0) done.error = file_error("writing", file, wrote.error);
      ::close(fd);
      done.size = wrote.written;
      return done;
    }
    case Kind::install: {
      if (!options_.in_shard) {
        done.error = make_error(errc::unavailable, "this node knows no shards");
      } else {
        auto installed = store_.install_shard(
            dir, op.shard, [&](std::string_view room) { return options_.in_shard(op.shard, room); }, op.offset);
        if (installed) {
          done.position = installed->position;
          done.terms = std::move(installed->terms);
          done.view = std::move(installed->view);
          done.size = installed->messages;
          done.reconciled = installed->reconciled;
        } else {
          done.error = installed.error();
        }
      }
      std::filesystem::remove_all(dir, ec);
      measure_store();
      return done;
    }
  }
  return std::nullopt;
}

namespace {

// The answer to `lookup` (its strings are moved from), all in one read transaction.
store::Looked look_up(store::Lookup& lookup, const persistence::HistoryStore& store) {
  std::vector<persistence::HistoryStore::TargetQuery> queries;
  queries.reserve(lookup.items.size() * 2);
  for (auto& item : lookup.items) {
    queries.push_back({item.room, item.seq, item.user, item.key});
    if (item.also != 0) queries.push_back({std::move(item.room), item.also, std::move(item.user), std::move(item.key)});
  }
  auto found = store.targets(queries);
  store::Looked looked;
  looked.items.reserve(lookup.items.size());
  auto answer = found.begin();
  for (const auto& item : lookup.items) {
    store::Looked::Item& a = looked.items.emplace_back();
    a.corr = item.corr;
    // The answers in the order asked (the target's, then the other's when asked); the
    // first error is the item's.
    auto take = [&](auto& into) {
      auto& one = *answer++;
      if (a.error.code != errc::ok) return;
      if (one) into = std::move(*one);
      else a.error = one.error();
    };
    take(a.target);
    if (item.also != 0) take(a.also);
  }
  return looked;
}

}  // namespace

void Persistence::on_start(const std::vector<std::string>&, const std::vector<std::string>&, const Now&, Effects&) {
  measure_store();
}

void Persistence::measure_store() {
  if (auto* m = options_.metrics) {
    m->map_bytes.Set(static_cast<double>(store_.map_bytes()));
    m->used_bytes.Set(static_cast<double>(store_.used_bytes()));
    m->max_map_bytes.Set(static_cast<double>(store_.max_map_bytes()));
  }
}

void Persistence::on_message(const Inbound& in, const Now& now, Effects& out) {
  if (in.frames.size() != 1) {
    spdlog::error("persistence: {}-frame message from {}", in.frames.size(), in.sender);
    return;
  }
  auto message = store::receive(in.frames[0]);  // only chat of this node sends here
  if (!message) {
    spdlog::error("persistence: unreadable message from {}: {}", in.sender, message.error().message);
    return;
  }
  auto* m = options_.metrics;
  if (auto* append = std::get_if<store::Append>(&*message)) {
    if (m) m->messages.received(0);
    waiting_.push_back(Waiting{std::string(in.sender), std::move(*append)});
  } else if (auto* read = std::get_if<store::Read>(&*message)) {
    if (m) m->messages.received(1);
    answer_read(std::string(in.sender), *read, out);
  } else if (auto* log = std::get_if<store::ReadLog>(&*message)) {
    store::LogPage page;
    page.corr = log->corr;
    auto read = store_.log_after(log->shard, log->after, log->max_entries, log->max_bytes);
    if (read) {
      page.entries = std::move(read->entries);
      page.trimmed = read->trimmed;
    } else {
      page.error = read.error();
    }
    out.reply(std::string(in.sender), store::hand_over(std::move(page)));
  } else if (auto* copy = std::get_if<store::CopyOp>(&*message)) {
    on_drained(now, out);  // an install comes after every batch sent before it
    if (auto done = this->copy(*copy)) out.reply(std::string(in.sender), store::encode(*done));
  } else if (auto* lookup = std::get_if<store::Lookup>(&*message)) {
    // Of what is committed, at once, in one read transaction: chat counts in the batches
    // it has not heard are durable (this reply reaches it before their Appended).
    auto looked = look_up(*lookup, store_);
    out.reply(std::string(in.sender), store::hand_over(std::move(looked)));
  } else if (auto* truncate = std::get_if<store::Truncate>(&*message)) {
    on_drained(now, out);  // after every batch sent before it
    out.reply(std::string(in.sender), store::encode(this->truncate(*truncate)));
  } else {
    spdlog::error("persistence: unexpected message from {}", in.sender);
  }
}

store::Truncated Persistence::truncate(const store::Truncate& request) {
  store::Truncated done;
  done.corr = request.corr;
  // The tail's entries, oldest first; their messages go back newest first.
  std::vector<persistence::LogEntry> tail;
  for (std::uint64_t after = request.lsn;;) {
    auto read = store_.log_after(request.shard, after, 256, 4u << 20);
    if (!read) {
      done.error = read.error();
      return done;
    }
    if (read->trimmed) {
      done.error = make_error(errc::internal, "the tail of shard '" + request.shard + "' after lsn " +
                                                  std::to_string(request.lsn) + " starts before what this node's "
                                                  "log keeps: the node needs a copy of the primary's store");
      return done;
    }
    if (read->entries.empty()) break;
    after = read->entries.back().lsn;
    for (auto& e : read->entries) tail.push_back(std::move(e));
  }
  transport::Limits limits = options_.limits;  // written by this node: only a bug could make them large
  limits.max_frame = std::size_t{1} << 31;
  limits.max_string = limits.max_body = std::size_t{1} << 30;
  limits.max_array = std::size_t{1} << 24;
  std::vector<persistence::Record> records;
  for (auto e = tail.rbegin(); e != tail.rend(); ++e) {
    auto entry = store::decode_records(e->body, limits);
    if (!entry) {
      done.error = make_error(errc::internal, "entry " + std::to_string(e->lsn) + " of shard '" + request.shard +
                                                  "' is unreadable: " + entry.error().message);
      return done;
    }
    for (auto r = entry->rbegin(); r != entry->rend(); ++r) {
      auto* message = std::get_if<persistence::StoredMessage>(&*r);
      if (message != nullptr && (message->entry.kind != EntryKind::message || message->entry.thread != 0)) {
        done.error = make_error(errc::internal, "entry " + std::to_string(e->lsn) + " of shard '" + request.shard +
                                                    "' holds an edit, delete, reaction or thread message, which "
                                                    "changed an earlier message and cannot be taken back: the node "
                                                    "needs a copy of the primary's store");
        done.reconciled.clear();
        return done;
      }
      if (message == nullptr) {
        done.error = make_error(errc::internal, "entry " + std::to_string(e->lsn) + " of shard '" + request.shard +
                                                    "' holds a room or membership change, which cannot be taken back "
                                                    "yet: the node needs a copy of the primary's store");
        done.reconciled.clear();
        return done;
      }
      records.push_back(persistence::ReconcileMessage{message->room, message->seq});
      message->body.clear();
      done.reconciled.push_back(std::move(*message));
    }
  }
  records.push_back(persistence::TruncateLog{request.shard, request.lsn});
  if (auto stored = store_.append_batch(records); !stored) {
    done.error = stored.error();
    done.reconciled.clear();
  }
  return done;
}

bool Persistence::follows_failure(const Waiting& w) const {
  if (w.append.after == 0) return false;
  auto it = last_failed_.find(w.sender);
  return it != last_failed_.end() && it->second == w.append.after;
}

void Persistence::on_drained(const Now&, Effects& out) {
  if (waiting_.empty()) return;
  auto* m = options_.metrics;
  auto commit = [&](std::span<const std::span<const persistence::Record>> groups) {
    auto result = store_.append_batches(groups);
    ++stats_.commits;
    if (result) {
      std::size_t records = 0;
      for (const auto& g : groups) records += g.size();
      stats_.records += records;
      if (m) m->commit_records.Observe(static_cast<double>(records));
    } else {
      ++stats_.failures;
    }
    return result.ok() ? Error{errc::ok, {}} : result.error();
  };
  auto commit_one = [&](const Waiting& w) {
    const std::span<const persistence::Record> one[] = {w.append.records};
    return commit(one);
  };
  auto answer = [&](const Waiting& w, const Error& error) {
    if (error.code != errc::ok) last_failed_[w.sender] = w.append.batch;
    if (m) {
      m->messages.sent(0);
      if (error.code != errc::ok) m->messages.error(error.code);
    }
    out.reply(w.sender, store::encode(store::Appended{w.append.batch, error}));
  };
  auto refuse = [&](const Waiting& w) {
    answer(w, Error{errc::unavailable, "batch " + std::to_string(w.append.after) + ", which it follows, was not stored"});
  };

  // One write transaction for every batch that waited (the group commit).
  std::vector<const Waiting*> ready;
  std::vector<std::span<const persistence::Record>> groups;
  for (auto& w : waiting_) {
    if (follows_failure(w)) {
      refuse(w);
      continue;
    }
    ready.push_back(&w);
    groups.emplace_back(w.append.records);
  }
  if (ready.size() == 1) {
    answer(*ready[0], commit(groups));
  } else if (!ready.empty()) {
    Error error = commit(groups);
    if (error.code == errc::internal) {
      // One batch broke an invariant; the others must not fail with it: one by one.
      for (const auto* w : ready) {
        if (follows_failure(*w)) refuse(*w);
        else answer(*w, commit_one(*w));
      }
    } else {
      for (const auto* w : ready) answer(*w, error);
    }
  }
  waiting_.clear();
  measure_store();
}

void Persistence::answer_read(const std::string& sender, const store::Read& read, Effects& out) {
  out.reply(sender, store::hand_over(read_page(store_.reader(), read, {options_.max_page_bytes, options_.metrics})));
}

}  // namespace switchboard::actors
