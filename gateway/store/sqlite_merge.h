// SPDX-License-Identifier: Apache-2.0
#pragma once

// The SQLite side of the merge (issue 11) outside the merge transaction's MergeTx
// (sqlite_merge.cc): the reads of patient clusters, routed claims and conflicts, and what an
// ingest commit writes beside its merged resources (coverage index rows, claim-file evidence,
// routed claims, the demographic key of a Patient).

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "conformance/common/result.h"
#include "gateway/store/sqlite_connection.h"
#include "gateway/store/store.h"

namespace fhir::gateway::sqlite {

// The patient and every patient of its cluster (one survivor), the patient first.
Result<std::vector<std::string>> clusterOf(Connection& db, std::string_view patient_id);
Result<std::vector<RoutedClaim>> routedOf(Connection& db, std::string_view patient_id);
Result<std::vector<RoutingConflict>> routingConflicts(Connection& db, size_t limit);
Result<std::vector<PatientConflict>> patientConflicts(Connection& db, size_t limit);
Result<std::vector<std::string>> patientsWithDemographics(Connection& db, const PatientDemographics& who);
Result<std::vector<std::string>> patientsWithMember(Connection& db, std::string_view payer_id, std::string_view member_id);
Status updateUnroutableReason(Connection& db, std::string_view claim_id, std::string_view reason,
                              std::string_view outcome_json);
Status putRoutingConflict(Connection& db, const RoutingConflict& conflict);

// The demographic key of a stored Patient (name[0].family, name[0].given[0], birthDate,
// gender), read by SQLite's JSON functions so the backfill in migrate() reads it the same way.
Status indexDemographics(Connection& db, const std::string& id, const std::string& patient_json);

// In an ingest transaction: a merged Coverage replaces its index rows; the commit's own coverage
// facts are indexed (a claim file's dates of service as evidence); routed claims are recorded.
// Store::readMerge on a read connection: one snapshot (a read transaction), writes refused.
Status readMerge(Connection& db, const std::function<Status(MergeTx&)>& read);

// The merge of an ingest commit in the writer's transaction, under its own savepoint. `changed`:
// the commit was checked with another merge (takeCheckedMerge); then nothing of it is written.
Status mergeInTransaction(Connection& db, const MergeHook& hook, const IngestCommit& commit,
                          std::vector<ResourceWrite>& merged, std::vector<CoverageFact>& coverage,
                          bool& changed);

Status writeCoverageFacts(Connection& db, const IngestCommit& commit,
                          const std::vector<CoverageFact>& merged_coverage);

}  // namespace fhir::gateway::sqlite
