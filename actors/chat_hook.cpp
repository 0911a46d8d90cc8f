// Chat's publish hook: a service (actors/service.hpp) that accepts or refuses every
// publish before it is stored. While a publish waits for its verdict, whatever comes
// after it waits in line too, so a caller's requests are stored in the order sent.
#include <algorithm>

#include <spdlog/spdlog.h>

#include "switchboard/actors/chat.hpp"
#include "switchboard/router/peer_frames.hpp"

namespace switchboard::actors {

std::string service_actor(const std::string& service) { return "$" + service; }

void Chat::enqueue(Pending op, std::string_view frame, const Now& now, Effects& out) {
  if (!op.caller.peer.empty() || op.caller.node) last_request_ = now.steady;  // not chat's own (its trims)
  // A publish_batch is asked about whole: the service library checks each item, and
  // one refused item refuses the frame (actors/service.hpp).
  const auto* entry = std::get_if<transport::Publish>(&op.request);
  const bool publish = entry != nullptr || std::holds_alternative<transport::PublishBatch>(op.request);
  // Only edits, deletes, reactions, and messages that name a thread or a message they answer.
  if (entry != nullptr && EntryRules::looked_up(*entry).first == 0) entry = nullptr;
  // A room the one asking does not see is refused as for any publish (nothing to look up).
  if (entry != nullptr && book_.find_visible(entry->room, op.as) == nullptr) entry = nullptr;
  const bool hooked = options_.hook && publish;
  // An edit, delete or react waits in line for its target to be looked up (a reply for
  // what it names); whatever comes after one waits behind it, as behind a hook's verdict.
  if (!hooked && entry == nullptr && checks_.empty()) {
    pipeline_.enqueue(std::move(op));
    return;
  }
  Check check;
  check.op = std::move(op);
  check.deadline = hooked ? now.steady + options_.hook->timeout : SteadyClock::time_point::max();
  if (hooked) {
    check.corr = next_forward_++;
    out.send(service_actor(options_.hook->service), router::encode_peer(router::PeerKind::forward, check.corr, frame));
  } else {
    check.verdict = Check::Verdict::accept;  // not for the hook: it keeps its place, or waits for its lookup
  }
  if (entry != nullptr) {
    entry = &std::get<transport::Publish>(check.op.request);  // the op moved
    check.lookup = next_corr_++;
    const std::string key = entry->kind == EntryKind::react ? entry->key : std::string();
    const auto [seq, also] = EntryRules::looked_up(*entry);
    // Sent with the others of this read round (send_lookups): one hand-over, one read
    // transaction for them all.
    lookups_.items.push_back({check.lookup, entry->room, seq, entry->user, key, also});
  }
  checks_.push_back(std::move(check));
  if (hooked && !check_timer_armed_) {
    check_timer_armed_ = true;
    out.start_timer(kCheckTimer, checks_.back().deadline);
  }
}

void Chat::send_lookups(Effects& out) {
  if (lookups_.items.empty()) return;
  out.send(options_.persistence_actor, store::hand_over(std::move(lookups_)));
  lookups_.items.clear();
}

void Chat::on_looked(store::Looked& looked, Effects& out) {
  // The answers come in the order the checks were made, which is checks_'s (a check
  // leaves the line only once answered): each is looked for from where the one before
  // it was found.
  auto from = checks_.begin();
  for (auto& item : looked.items) {
    auto c = std::find_if(from, checks_.end(), [&](const Check& k) { return k.lookup == item.corr; });
    if (c == checks_.end()) continue;  // not in line (cannot happen, as said)
    from = std::next(c);
    c->lookup = 0;
    if (item.error.code == errc::ok) {
      c->op.mark = rules_.fold(std::get<transport::Publish>(c->op.request), item.target, &item.also);
      c->op.target = std::move(item.target);
      c->op.also = std::move(item.also);
    } else {
      c->lookup_error = std::move(item.error);
    }
  }
  release_checked(out);
}

void Chat::on_hook_message(const router::PeerFrame& frame, bool undeliverable, const Now& now, Effects& out) {
  const router::PeerFrame* peer = &frame;
  if (undeliverable) {
    if (peer->kind == router::PeerKind::forward) on_verdict(peer->corr, Check::Verdict::no_answer, {}, now, out);
    return;
  }
  if (peer->kind == router::PeerKind::accept) on_verdict(peer->corr, Check::Verdict::accept, {}, now, out);
  else if (peer->kind == router::PeerKind::refuse)
    on_verdict(peer->corr, Check::Verdict::refuse, std::string(peer->body), now, out);
}

void Chat::on_verdict(std::uint64_t corr, Check::Verdict verdict, std::string reason, const Now&, Effects& out) {
  for (auto& c : checks_)
    if (c.corr == corr && c.verdict == Check::Verdict::waiting) {
      c.verdict = verdict;
      c.reason = std::move(reason);
      break;
    }
  release_checked(out);
}

void Chat::release_checked(Effects& out) {
  while (!checks_.empty() && checks_.front().verdict != Check::Verdict::waiting && checks_.front().lookup == 0) {
    Check c = std::move(checks_.front());
    checks_.pop_front();
    using V = Check::Verdict;
    if (c.lookup_error) {
      fail_op(out, c.op, c.lookup_error->code, c.lookup_error->message);
      continue;
    }
    if (c.verdict == V::accept || (c.verdict == V::no_answer && options_.hook->fail_open)) {
      pipeline_.enqueue(std::move(c.op));
      continue;
    }
    const bool refused = c.verdict == V::refuse;
    if (refused) ++stats_.hook_refused;
    const errc code = refused ? errc::refused : errc::unavailable;
    const std::string message = refused ? "refused by " + options_.hook->service + ": " + c.reason
                                        : "no verdict from " + options_.hook->service + " in time; try again later";
    fail_op(out, c.op, code, message);
  }
}

void Chat::expire_checks(const Now& now, Effects& out) {
  check_timer_armed_ = false;
  for (auto& c : checks_)
    if (c.verdict == Check::Verdict::waiting && c.deadline <= now.steady) c.verdict = Check::Verdict::no_answer;
  release_checked(out);
  for (const auto& c : checks_)
    if (c.verdict == Check::Verdict::waiting && c.corr != 0) {
      check_timer_armed_ = true;
      out.start_timer(kCheckTimer, c.deadline);
      break;
    }
}

}  // namespace switchboard::actors
