// SPDX-License-Identifier: Apache-2.0
// The FHIRPath function library: the table from each function to the handler of its section of
// the specification (functions_<section>.cc).

#include <array>

#include "conformance/fhirpath/functions.h"

namespace fhir::fhirpath {
namespace {

using FunctionHandler = Collection (Evaluator::*)(const Node&, const Collection&);

struct FunctionEntry {
  Fn fn;
  FunctionHandler handler;
};

constexpr FunctionEntry kEntries[] = {
    {Fn::kEmpty, &Evaluator::existenceFunction},
    {Fn::kExists, &Evaluator::existenceFunction},
    {Fn::kAll, &Evaluator::existenceFunction},
    {Fn::kAllTrue, &Evaluator::existenceFunction},
    {Fn::kAnyTrue, &Evaluator::existenceFunction},
    {Fn::kAllFalse, &Evaluator::existenceFunction},
    {Fn::kAnyFalse, &Evaluator::existenceFunction},
    {Fn::kSubsetOf, &Evaluator::existenceFunction},
    {Fn::kSupersetOf, &Evaluator::existenceFunction},
    {Fn::kCount, &Evaluator::existenceFunction},
    {Fn::kDistinct, &Evaluator::existenceFunction},
    {Fn::kIsDistinct, &Evaluator::existenceFunction},
    {Fn::kWhere, &Evaluator::filteringFunction},
    {Fn::kSelect, &Evaluator::filteringFunction},
    {Fn::kRepeat, &Evaluator::filteringFunction},
    {Fn::kSingle, &Evaluator::subsettingFunction},
    {Fn::kFirst, &Evaluator::subsettingFunction},
    {Fn::kLast, &Evaluator::subsettingFunction},
    {Fn::kTail, &Evaluator::subsettingFunction},
    {Fn::kSkip, &Evaluator::subsettingFunction},
    {Fn::kTake, &Evaluator::subsettingFunction},
    {Fn::kIntersect, &Evaluator::subsettingFunction},
    {Fn::kExclude, &Evaluator::subsettingFunction},
    {Fn::kUnion, &Evaluator::combiningFunction},
    {Fn::kCombine, &Evaluator::combiningFunction},
    {Fn::kIif, &Evaluator::conversionFunction},
    {Fn::kToBoolean, &Evaluator::conversionFunction},
    {Fn::kConvertsToBoolean, &Evaluator::conversionFunction},
    {Fn::kToInteger, &Evaluator::conversionFunction},
    {Fn::kConvertsToInteger, &Evaluator::conversionFunction},
    {Fn::kToDecimal, &Evaluator::conversionFunction},
    {Fn::kConvertsToDecimal, &Evaluator::conversionFunction},
    {Fn::kToQuantity, &Evaluator::conversionFunction},
    {Fn::kConvertsToQuantity, &Evaluator::conversionFunction},
    {Fn::kToDate, &Evaluator::conversionFunction},
    {Fn::kConvertsToDate, &Evaluator::conversionFunction},
    {Fn::kToDateTime, &Evaluator::conversionFunction},
    {Fn::kConvertsToDateTime, &Evaluator::conversionFunction},
    {Fn::kToTime, &Evaluator::conversionFunction},
    {Fn::kConvertsToTime, &Evaluator::conversionFunction},
    {Fn::kToString, &Evaluator::conversionFunction},
    {Fn::kConvertsToString, &Evaluator::conversionFunction},
    {Fn::kIndexOf, &Evaluator::stringFunction},
    {Fn::kSubstring, &Evaluator::stringFunction},
    {Fn::kStartsWith, &Evaluator::stringFunction},
    {Fn::kEndsWith, &Evaluator::stringFunction},
    {Fn::kContainsStr, &Evaluator::stringFunction},
    {Fn::kUpper, &Evaluator::stringFunction},
    {Fn::kLower, &Evaluator::stringFunction},
    {Fn::kReplace, &Evaluator::stringFunction},
    {Fn::kMatches, &Evaluator::stringFunction},
    {Fn::kMatchesFull, &Evaluator::stringFunction},
    {Fn::kReplaceMatches, &Evaluator::stringFunction},
    {Fn::kLength, &Evaluator::stringFunction},
    {Fn::kToChars, &Evaluator::stringFunction},
    {Fn::kSplit, &Evaluator::stringFunction},
    {Fn::kJoin, &Evaluator::stringFunction},
    {Fn::kTrim, &Evaluator::stringFunction},
    {Fn::kEncode, &Evaluator::stringFunction},
    {Fn::kDecode, &Evaluator::stringFunction},
    {Fn::kEscape, &Evaluator::stringFunction},
    {Fn::kUnescape, &Evaluator::stringFunction},
    {Fn::kAbs, &Evaluator::mathFunction},
    {Fn::kCeiling, &Evaluator::mathFunction},
    {Fn::kExp, &Evaluator::mathFunction},
    {Fn::kFloor, &Evaluator::mathFunction},
    {Fn::kLn, &Evaluator::mathFunction},
    {Fn::kLog, &Evaluator::mathFunction},
    {Fn::kPower, &Evaluator::mathFunction},
    {Fn::kRound, &Evaluator::mathFunction},
    {Fn::kSqrt, &Evaluator::mathFunction},
    {Fn::kTruncate, &Evaluator::mathFunction},
    {Fn::kSum, &Evaluator::mathFunction},
    {Fn::kMin, &Evaluator::mathFunction},
    {Fn::kMax, &Evaluator::mathFunction},
    {Fn::kAvg, &Evaluator::mathFunction},
    {Fn::kLowBoundary, &Evaluator::mathFunction},
    {Fn::kHighBoundary, &Evaluator::mathFunction},
    {Fn::kComparable, &Evaluator::mathFunction},
    {Fn::kPrecision, &Evaluator::mathFunction},
    {Fn::kChildren, &Evaluator::navigationFunction},
    {Fn::kDescendants, &Evaluator::navigationFunction},
    {Fn::kTrace, &Evaluator::utilityFunction},
    {Fn::kNow, &Evaluator::utilityFunction},
    {Fn::kToday, &Evaluator::utilityFunction},
    {Fn::kTimeOfDay, &Evaluator::utilityFunction},
    {Fn::kNot, &Evaluator::utilityFunction},
    {Fn::kAggregate, &Evaluator::utilityFunction},
    {Fn::kSort, &Evaluator::utilityFunction},
    {Fn::kOfType, &Evaluator::typeFunction},
    {Fn::kIs, &Evaluator::typeFunction},
    {Fn::kAs, &Evaluator::typeFunction},
    {Fn::kType, &Evaluator::typeFunction},
    {Fn::kExtension, &Evaluator::fhirFunction},
    {Fn::kHasValue, &Evaluator::fhirFunction},
    {Fn::kGetValue, &Evaluator::fhirFunction},
    {Fn::kHtmlChecks, &Evaluator::fhirFunction},
    {Fn::kConformsTo, &Evaluator::fhirFunction},
    {Fn::kMemberOf, &Evaluator::fhirFunction},
    {Fn::kResolve, &Evaluator::fhirFunction},
    {Fn::kSubsumes, &Evaluator::terminologyFunction},
    {Fn::kSubsumedBy, &Evaluator::terminologyFunction},
    {Fn::kExpand, &Evaluator::terminologyFunction},
    {Fn::kLookup, &Evaluator::terminologyFunction},
    {Fn::kValidateVS, &Evaluator::terminologyFunction},
    {Fn::kValidateCS, &Evaluator::terminologyFunction},
    {Fn::kTranslate, &Evaluator::terminologyFunction},
};

constexpr size_t kFunctionCount = static_cast<size_t>(Fn::kAvg) + 1;

constexpr std::array<FunctionHandler, kFunctionCount> buildTable() {
  std::array<FunctionHandler, kFunctionCount> table{};
  for (const FunctionEntry& entry : kEntries) table[static_cast<size_t>(entry.fn)] = entry.handler;
  return table;
}

constexpr std::array<FunctionHandler, kFunctionCount> kHandlers = buildTable();

// Checked on the entries' enum values, not on the handler pointers: g++ 12 with
// -fsanitize=address,undefined does not treat a comparison of function pointers as a constant.
constexpr bool everyFunctionHasAnEntry() {
  std::array<bool, kFunctionCount> seen{};
  for (const FunctionEntry& entry : kEntries) seen[static_cast<size_t>(entry.fn)] = true;
  for (bool present : seen) {
    if (!present) return false;
  }
  return true;
}
static_assert(everyFunctionHasAnEntry(), "a function of enum Fn has no entry in kEntries");

}  // namespace

Collection Evaluator::callFunction(const Node& node, const Collection& focus) {
  switch (node.fn) {
    case Fn::kFirst:
    case Fn::kLast:
    case Fn::kTail:
    case Fn::kSkip:
    case Fn::kTake:
      if (node.has_source) checkOrdered(*node.children[0], (node.name + "()").c_str());
      break;
    default: break;
  }
  return (this->*kHandlers[static_cast<size_t>(node.fn)])(node, focus);
}

}  // namespace fhir::fhirpath
