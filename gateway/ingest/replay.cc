// SPDX-License-Identifier: Apache-2.0
// Replay of quarantined payloads through the channel they came in on; while one is replayed, the
// channel's rejections of it are recorded on its entry instead of a new one.
#include "gateway/ingest/channel.h"
#include "gateway/ingest/ingest_service.h"
#include "gateway/ingest/pipeline.h"
#include "conformance/common/ids.h"

namespace fhir::gateway {
namespace {

// While a quarantined payload is replayed on this thread, the channel's rejections of it are
// recorded against its quarantine entry instead of quarantining it a second time.
struct ReplayCapture {
  std::string quarantine_id;
  bool record = false;    // the entry is one record of a file: its rejections are the entry's
  bool rejected = false;  // the channel rejected it again
};
thread_local ReplayCapture* t_replay = nullptr;

// Sets t_replay for one replay and restores it however the replay ends.
class ReplayScope {
 public:
  explicit ReplayScope(ReplayCapture& capture) : previous_(t_replay) { t_replay = &capture; }
  ~ReplayScope() { t_replay = previous_; }
  ReplayScope(const ReplayScope&) = delete;
  ReplayScope& operator=(const ReplayScope&) = delete;

 private:
  ReplayCapture* previous_;
};

ReplayOutcome notReplayable(int status, const std::string& code, const std::string& why, const std::string& result) {
  IssueList issues;
  issues.add(Issue{Severity::kError, code, why, {}, {}});
  return ReplayOutcome{outcomeAnswer(status, issues), result};
}

}  // namespace

Result<std::string> IngestService::keep(QuarantineWrite write) {
  if (t_replay != nullptr && (!write.record || t_replay->record)) {
    t_replay->rejected = true;
    return t_replay->quarantine_id;
  }
  // limits.maxQuarantinePayloadBytes: the first bytes are kept, with the digest of the whole.
  const auto max_payload = static_cast<size_t>(config_.limits.max_quarantine_payload_bytes);
  if (write.payload.size() > max_payload) {
    if (write.payload_sha256.empty()) write.payload_sha256 = fhir::sha256Hex(write.payload);
    write.payload.resize(max_payload);
    write.truncated = true;
  }
  return store_->quarantine(std::move(write));
}

ReplayOutcome replayQuarantined(IngestService& service, const ChannelTable& channels, const std::string& quarantine_id) {
  auto entry = service.store().readQuarantine(quarantine_id);
  if (!entry.ok()) return ReplayOutcome{storeFailure(entry.message()), "failed"};
  if (!entry->has_value()) return notReplayable(404, "not-found", "no quarantined payload " + quarantine_id, "not-found");
  const QuarantineEntry& kept = **entry;
  if (kept.truncated) {
    return notReplayable(422, "not-supported",
                         "only the first " + std::to_string(kept.payload.size()) +
                             " bytes of this oversized body were kept; it cannot be replayed (send it again)",
                         "not-replayable");
  }
  const size_t colon = kept.channel.find(':');
  const std::string name = kept.channel.substr(0, colon);
  const std::string argument = colon == std::string::npos ? std::string() : kept.channel.substr(colon + 1);
  Channel* channel = channels.find(name);
  if (channel == nullptr) {
    return notReplayable(422, "not-supported", "payloads of channel '" + kept.channel + "' cannot be replayed",
                         "not-replayable");
  }
  // Claims quarantined before their interchange's envelope was kept with them.
  if (kept.record && kept.replay_prefix.empty() && mediaType(kept.content_type) == "application/edi-x12") {
    return notReplayable(422, "not-supported",
                         "this claim was cut out of its X12 interchange and cannot be read alone (it was kept "
                         "without the interchange's envelope); send the interchange again",
                         "not-replayable");
  }
  ReplayCapture capture{quarantine_id, kept.record};
  Answer answer;
  {
    ReplayScope scope(capture);
    const std::string payload = kept.replay_prefix + kept.payload + kept.replay_suffix;
    answer = channel->ingest(IngestRequest{argument, kept.content_type, payload});
  }
  const bool accepted = answer.status < 300 && !capture.rejected;
  const std::string result = accepted ? "accepted" : answer.status >= 500 ? "failed" : "rejected";
  auto recorded = service.store().recordReplay(quarantine_id, answer.status, answer.body, accepted);
  if (!recorded.ok()) return ReplayOutcome{storeFailure(recorded.message()), "failed"};
  return ReplayOutcome{std::move(answer), result};
}

}  // namespace fhir::gateway
