// SPDX-License-Identifier: Apache-2.0
#pragma once

// The built-in ingest channels (gateway/ingest/channel.h), one file each.

#include <string>
#include <string_view>

#include "gateway/ingest/channel.h"

namespace fhir::gateway {

class IngestService;

// POST /ingest/econsult: a JSON event (mappers/specs/econsult.json) or an HL7 v2 REF^I12/RRI^I12
// (x-application/hl7-v2+er7, econsult-v2.json, answered with an ER7 ACK).
ChannelPtr makeEconsultChannel(IngestService& service);
// A body refused before ingest (413 with its OperationOutcome) as the answer the sender of
// `content_type` expects: for HL7 v2 an ER7 ACK with AR and the diagnostics in ERR, else as is.
Answer econsultRefusal(Answer refused, std::string_view content_type);

// POST /ingest/care-management: one care-management event (JSON), mapped by spec
// `care-management`; billing Claims are routed as e-consult billing is.
ChannelPtr makeCareManagementChannel(IngestService& service);

// POST /ingest/claims/{payerId} (`kind` "claims") and POST /ingest/roster/{payerId} (`kind`
// "roster"): a payer file streamed record by record, staged, published once the body has ended
// as declared (payer_file_channel.cc).
ChannelPtr makePayerFileChannel(IngestService& service, std::string kind);
// Accepted records are staged and published in batches of this many.
constexpr size_t kPayerFileBatch = 256;

}  // namespace fhir::gateway
