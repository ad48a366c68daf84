//! A lab result as a patient reads it: what was measured, the value and unit, the
//! reference range and whether it is flagged.

use serde_json::Value;

/// A lab result's reading.
#[derive(Debug, Clone, PartialEq)]
pub struct LabReading {
    /// The analyte's code (LOINC where the EHR gives one), which groups a trend.
    pub code: Option<String>,
    /// The analyte's name.
    pub name: String,
    /// The numeric value, if it is a quantity.
    pub value: Option<f64>,
    /// The value as text (a quantity with its comparator, a coded or string result).
    pub value_text: Option<String>,
    /// The unit.
    pub unit: Option<String>,
    /// The reference range's low end.
    pub low: Option<f64>,
    /// The reference range's high end.
    pub high: Option<f64>,
    /// The range as text (`70–99 mg/dL`, or the EHR's own text).
    pub range: Option<String>,
    /// The interpretation code (`H`, `L`, `N`, `A`, `HH`, `LL`, …), if any.
    pub flag: Option<String>,
}

/// Reads an Observation's value, range and flag. Tolerant: whatever is missing is `None`.
pub fn reading(observation: &Value) -> LabReading {
    let coding = observation
        .pointer("/code/coding")
        .and_then(Value::as_array)
        .and_then(|codings| {
            codings
                .iter()
                .find(|c| c["system"] == "http://loinc.org")
                .or_else(|| codings.first())
        });
    let name = observation
        .pointer("/code/text")
        .and_then(Value::as_str)
        .or_else(|| coding.and_then(|c| c["display"].as_str()))
        .or_else(|| coding.and_then(|c| c["code"].as_str()))
        .unwrap_or("Result")
        .to_owned();
    let quantity = observation.get("valueQuantity");
    let value = quantity.and_then(|q| q["value"].as_f64());
    let unit = quantity
        .and_then(|q| q["unit"].as_str().or_else(|| q["code"].as_str()))
        .map(str::to_owned);
    let value_text = match (quantity, value) {
        (Some(q), Some(v)) => Some(format!(
            "{}{}",
            q["comparator"].as_str().unwrap_or_default(),
            trim_number(v)
        )),
        _ => observation
            .get("valueString")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| {
                let concept = observation.get("valueCodeableConcept")?;
                concept["text"]
                    .as_str()
                    .or_else(|| concept.pointer("/coding/0/display").and_then(Value::as_str))
                    .map(str::to_owned)
            }),
    };
    let range = observation.pointer("/referenceRange/0");
    let low = range
        .and_then(|r| r.pointer("/low/value"))
        .and_then(Value::as_f64);
    let high = range
        .and_then(|r| r.pointer("/high/value"))
        .and_then(Value::as_f64);
    let range_unit = range
        .and_then(|r| r.pointer("/high/unit").or_else(|| r.pointer("/low/unit")))
        .and_then(Value::as_str)
        .or(unit.as_deref());
    let range_text = range
        .and_then(|r| r["text"].as_str())
        .map(str::to_owned)
        .or_else(|| {
            let bounds = match (low, high) {
                (Some(low), Some(high)) => format!("{}–{}", trim_number(low), trim_number(high)),
                (Some(low), None) => format!("≥ {}", trim_number(low)),
                (None, Some(high)) => format!("≤ {}", trim_number(high)),
                (None, None) => return None,
            };
            Some(match range_unit {
                Some(unit) => format!("{bounds} {unit}"),
                None => bounds,
            })
        });
    let flag = observation
        .pointer("/interpretation/0/coding/0/code")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| match (value, low, high) {
            (Some(v), _, Some(high)) if v > high => Some("H".to_owned()),
            (Some(v), Some(low), _) if v < low => Some("L".to_owned()),
            _ => None,
        });

    LabReading {
        code: coding.and_then(|c| c["code"].as_str()).map(str::to_owned),
        name,
        value,
        value_text,
        unit,
        low,
        high,
        range: range_text,
        flag,
    }
}

fn trim_number(value: f64) -> String {
    let text = format!("{value:.4}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_quantity_with_range_and_interpretation() {
        let reading = reading(&json!({
            "resourceType": "Observation",
            "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7", "display": "Glucose [Mass/volume] in Serum or Plasma"}]},
            "valueQuantity": {"value": 112.0, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"},
            "referenceRange": [{"low": {"value": 70, "unit": "mg/dL"}, "high": {"value": 99, "unit": "mg/dL"}}],
            "interpretation": [{"coding": [{"code": "H"}]}]
        }));
        assert_eq!(reading.code.as_deref(), Some("2345-7"));
        assert_eq!(reading.value, Some(112.0));
        assert_eq!(reading.value_text.as_deref(), Some("112"));
        assert_eq!(reading.range.as_deref(), Some("70–99 mg/dL"));
        assert_eq!(reading.flag.as_deref(), Some("H"));
    }

    #[test]
    fn a_flag_is_computed_when_the_ehr_gives_none_and_text_results_are_kept() {
        let low = reading(&json!({
            "code": {"text": "Potassium"},
            "valueQuantity": {"value": 3.1, "unit": "mmol/L"},
            "referenceRange": [{"low": {"value": 3.5}, "high": {"value": 5.1}}]
        }));
        assert_eq!(
            (low.flag.as_deref(), low.name.as_str()),
            (Some("L"), "Potassium")
        );
        let text = reading(&json!({"code": {"text": "Culture"}, "valueString": "No growth"}));
        assert_eq!(text.value_text.as_deref(), Some("No growth"));
        assert_eq!((text.value, text.range, text.flag), (None, None, None));
    }
}
