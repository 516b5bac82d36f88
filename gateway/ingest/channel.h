// SPDX-License-Identifier: Apache-2.0
#pragma once

// An ingest channel: one format events arrive in (a JSON e-consult or HL7 v2 message, a
// care-management event, a payer's claim or roster file). A channel decodes the body, derives
// the idempotency key, answers a re-post with the first answer, hands the decoded event to the
// channel-neutral IngestService and answers in the format its senders read (FHIR JSON, an ER7
// ACK, a file summary). Channels are registered by name in one ChannelTable; a quarantined
// payload is replayed through the channel it came in on (replay.cc).

#include <istream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "conformance/json/json.h"
#include "gateway/ingest/answer.h"

namespace fhir::gateway {

class IngestService;

// One request to a channel.
struct IngestRequest {
  std::string argument;             // what follows the channel in the path: the payer id of claims/roster
  std::string_view content_type;
  std::string_view body;            // the whole body (events, replays); unused when `stream` is set
  std::istream* stream = nullptr;   // payer files: the body as it arrives
  BodyEnded body_ended = {};        // with `stream`: asked once it has been read to its end
  std::string_view as_of = {};      // rosters: the asOf query parameter
};

class Channel {
 public:
  virtual ~Channel() = default;
  // The answer to one request, in the format this channel's senders read.
  virtual Answer ingest(const IngestRequest& request) = 0;
};
using ChannelPtr = std::unique_ptr<Channel>;

// Channels by name ("econsult", "care-management", "claims", "roster"): the quarantine's channel
// column is "<name>" or "<name>:<argument>".
class ChannelTable {
 public:
  void add(std::string name, ChannelPtr channel) { channels_[std::move(name)] = std::move(channel); }
  Channel* find(std::string_view name) const {
    auto found = channels_.find(name);
    return found == channels_.end() ? nullptr : found->second.get();
  }

 private:
  std::map<std::string, ChannelPtr, std::less<>> channels_;
};

// The built-in channels (gateway/ingest/channels/), registered explicitly at start-up.
void registerBuiltinChannels(ChannelTable& table, IngestService& service);

// Parses a JSON event body into `event` and sets `idempotency_key` (`key_prefix` + source +
// eventId, when both are there). An answer when the request ends here: the 400 of a body that
// is not JSON (quarantined), the first answer of a re-posted event, or a 503 of a failing store.
std::optional<Answer> decodeJsonEvent(IngestService& service, std::string_view channel, std::string_view key_prefix,
                                      std::string_view body, std::string_view content_type, json::Document& event,
                                      std::string& idempotency_key);

}  // namespace fhir::gateway
