// SPDX-License-Identifier: Apache-2.0
#include "gateway/store/merge_trace.h"

#include <tuple>

namespace fhir::gateway {
namespace {

using Op = MergeTrace::Op;
using Step = MergeTrace::Step;

auto fieldsOf(const merge::Contribution& c) {
  return std::tie(c.type, c.id, c.contributor, c.kind, c.organization, c.payer, c.rank, c.tiebreak, c.provenance,
                  c.patient_id, c.json);
}

bool same(const std::vector<merge::Contribution>& a, const std::vector<merge::Contribution>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (fieldsOf(a[i]) != fieldsOf(b[i])) return false;
  }
  return true;
}

Step stepOf(Op op, std::string_view a = {}, std::string_view b = {}, std::string_view c = {}) {
  Step step;
  step.op = op;
  step.a = std::string(a);
  step.b = std::string(b);
  step.c = std::string(c);
  return step;
}

}  // namespace

Status RecordingMergeTx::putContribution(const merge::Contribution& contribution) {
  Status status = inner_.putContribution(contribution);
  if (!status.ok()) return status;
  Step step = stepOf(Op::kPutContribution);
  step.contribution = contribution;
  trace_.steps.push_back(std::move(step));
  return status;
}

Result<std::vector<merge::Contribution>> RecordingMergeTx::contributions(std::string_view type, std::string_view id) {
  auto read = inner_.contributions(type, id);
  if (!read.ok()) return read;
  Step step = stepOf(Op::kContributions, type, id);
  step.contributions = *read;
  trace_.steps.push_back(std::move(step));
  return read;
}

Result<std::vector<std::pair<std::string, std::string>>> RecordingMergeTx::contributedAbout(std::string_view patient_id) {
  auto read = inner_.contributedAbout(patient_id);
  if (!read.ok()) return read;
  Step step = stepOf(Op::kContributedAbout, patient_id);
  step.keys = *read;
  trace_.steps.push_back(std::move(step));
  return read;
}

Result<std::vector<std::string>> RecordingMergeTx::coverageNeighbours(std::string_view patient_id) {
  auto read = inner_.coverageNeighbours(patient_id);
  if (!read.ok()) return read;
  Step step = stepOf(Op::kCoverageNeighbours, patient_id);
  step.ids = *read;
  trace_.steps.push_back(std::move(step));
  return read;
}

Result<std::vector<std::string>> RecordingMergeTx::patientsWithDemographics(const PatientDemographics& who) {
  auto read = inner_.patientsWithDemographics(who);
  if (!read.ok()) return read;
  Step step = stepOf(Op::kPatientsWithDemographics);
  step.who = who;
  step.ids = *read;
  trace_.steps.push_back(std::move(step));
  return read;
}

Result<std::vector<std::string>> RecordingMergeTx::linked(std::string_view patient_id) {
  auto read = inner_.linked(patient_id);
  if (!read.ok()) return read;
  Step step = stepOf(Op::kLinked, patient_id);
  step.ids = *read;
  trace_.steps.push_back(std::move(step));
  return read;
}

Result<std::string> RecordingMergeTx::survivorOf(std::string_view patient_id) {
  auto read = inner_.survivorOf(patient_id);
  if (!read.ok()) return read;
  Step step = stepOf(Op::kSurvivorOf, patient_id);
  step.text = *read;
  trace_.steps.push_back(std::move(step));
  return read;
}

Status RecordingMergeTx::setSurvivor(std::string_view patient_id, std::string_view survivor_id) {
  Status status = inner_.setSurvivor(patient_id, survivor_id);
  if (status.ok()) trace_.steps.push_back(stepOf(Op::kSetSurvivor, patient_id, survivor_id));
  return status;
}

Status RecordingMergeTx::putLink(std::string_view patient_id, std::string_view other_id, std::string_view evidence) {
  Status status = inner_.putLink(patient_id, other_id, evidence);
  if (status.ok()) trace_.steps.push_back(stepOf(Op::kPutLink, patient_id, other_id, evidence));
  return status;
}

Status RecordingMergeTx::putConflict(const PatientConflict& conflict) {
  Status status = inner_.putConflict(conflict);
  if (!status.ok()) return status;
  Step step = stepOf(Op::kPutConflict);
  step.conflict = conflict;
  trace_.steps.push_back(std::move(step));
  return status;
}

Result<bool> replayMergeTrace(MergeTx& tx, const MergeTrace& trace) {
  for (const Step& step : trace.steps) {
    switch (step.op) {
      case Op::kPutContribution: {
        Status status = tx.putContribution(step.contribution);
        if (!status.ok()) return Error{status.message()};
        break;
      }
      case Op::kContributions: {
        auto read = tx.contributions(step.a, step.b);
        if (!read.ok()) return read.error();
        if (!same(*read, step.contributions)) return false;
        break;
      }
      case Op::kContributedAbout: {
        auto read = tx.contributedAbout(step.a);
        if (!read.ok()) return read.error();
        if (*read != step.keys) return false;
        break;
      }
      case Op::kCoverageNeighbours: {
        auto read = tx.coverageNeighbours(step.a);
        if (!read.ok()) return read.error();
        if (*read != step.ids) return false;
        break;
      }
      case Op::kPatientsWithDemographics: {
        auto read = tx.patientsWithDemographics(step.who);
        if (!read.ok()) return read.error();
        if (*read != step.ids) return false;
        break;
      }
      case Op::kLinked: {
        auto read = tx.linked(step.a);
        if (!read.ok()) return read.error();
        if (*read != step.ids) return false;
        break;
      }
      case Op::kSurvivorOf: {
        auto read = tx.survivorOf(step.a);
        if (!read.ok()) return read.error();
        if (*read != step.text) return false;
        break;
      }
      case Op::kSetSurvivor: {
        Status status = tx.setSurvivor(step.a, step.b);
        if (!status.ok()) return Error{status.message()};
        break;
      }
      case Op::kPutLink: {
        Status status = tx.putLink(step.a, step.b, step.c);
        if (!status.ok()) return Error{status.message()};
        break;
      }
      case Op::kPutConflict: {
        Status status = tx.putConflict(step.conflict);
        if (!status.ok()) return Error{status.message()};
        break;
      }
    }
  }
  return true;
}

}  // namespace fhir::gateway
