// SPDX-License-Identifier: Apache-2.0
#pragma once

// QuestionnaireResponse against its Questionnaire: linkIds, answer types, required and
// repeating items (honouring enableWhen), answerOption / answerValueSet membership, and the
// core and SDC constraint extensions (minValue/maxValue, min/maxQuantity, minLength/maxLength,
// regex, maxDecimalPlaces, mimeType, maxSize, min/maxOccurs, optionExclusive,
// referenceResource). Messages follow the reference validator's wording.

#include <functional>
#include <string>
#include <string_view>

#include "conformance/json/json.h"
#include "conformance/outcome/outcome.h"
#include "conformance/terminology/terminology.h"

namespace fhir::validator {

// Checks `response` (a QuestionnaireResponse at FHIRPath location `path`) against
// `questionnaire`; appends issues.
void checkQuestionnaireResponse(const json::Value& response, const json::Value& questionnaire,
                                const std::string& path,
                                const terminology::Terminology& terminology,
                                const std::function<bool(std::string_view)>& is_resource_type,
                                IssueList& issues);

}  // namespace fhir::validator
