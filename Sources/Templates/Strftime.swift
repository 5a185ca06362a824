import Foundation

/// `datetime.now().strftime(format)` as transformers' `strftime_now` computes it: a
/// naive local time (so `%z` and `%Z` are empty), formatted by glibc in the C locale,
/// including glibc's padding flags (`%-d`, `%_d`, `%^a`). Unknown directives stay as written.
enum Strftime {
    static let weekdays = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
    static let months = ["January", "February", "March", "April", "May", "June", "July", "August",
                         "September", "October", "November", "December"]

    struct Fields {
        var year, month, day, hour, minute, second, microsecond: Int
        var weekday: Int   // 0 = Sunday
        var yearDay: Int   // 1-based
        var epoch: Int
    }

    static func fields(_ date: Date, _ timeZone: TimeZone) -> Fields {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second, .nanosecond, .weekday], from: date)
        let yearDay = calendar.ordinality(of: .day, in: .year, for: date) ?? 1
        let seconds = date.timeIntervalSince1970
        let micro = Int(((seconds - seconds.rounded(.down)) * 1_000_000).rounded(.down))
        return Fields(year: c.year!, month: c.month!, day: c.day!, hour: c.hour!, minute: c.minute!, second: c.second!,
                      microsecond: min(max(micro, 0), 999_999), weekday: c.weekday! - 1, yearDay: yearDay,
                      epoch: Int(seconds.rounded(.down)))
    }

    static func format(_ format: String, _ date: Date, _ timeZone: TimeZone) -> String {
        let f = fields(date, timeZone)
        let s = Array(format.unicodeScalars)
        var out = ""
        var i = 0
        while i < s.count {
            guard s[i] == "%", i + 1 < s.count else { out.unicodeScalars.append(s[i]); i += 1; continue }
            let start = i
            i += 1
            var flag: Unicode.Scalar?
            if "-_0^#".unicodeScalars.contains(s[i]), i + 1 < s.count { flag = s[i]; i += 1 }
            let d = s[i]
            i += 1
            if let text = directive(d, f, flag) {
                out += text
            } else {
                out += PyString.string(s[start..<i])
            }
        }
        return out
    }

    /// One directive's text, nil for an unknown one.
    private static func directive(_ d: Unicode.Scalar, _ f: Fields, _ flag: Unicode.Scalar?) -> String? {
        func number(_ v: Int, _ width: Int, _ pad: Character = "0") -> String {
            let digits = String(v)
            switch flag {
            case "-": return digits
            case "_": return String(repeating: " ", count: max(0, width - digits.count)) + digits
            case "0": return String(repeating: "0", count: max(0, width - digits.count)) + digits
            default: return String(repeating: pad, count: max(0, width - digits.count)) + digits
            }
        }
        func text(_ t: String) -> String { flag == "^" ? t.uppercased() : flag == "#" ? t.uppercased() : t }
        let hour12 = f.hour % 12 == 0 ? 12 : f.hour % 12
        // Week numbers: %U counts weeks starting on Sunday, %W on Monday.
        let weekU = (f.yearDay - 1 + 7 - f.weekday) / 7
        let weekW = (f.yearDay - 1 + 7 - (f.weekday + 6) % 7) / 7
        switch d {
        case "a": return text(String(weekdays[f.weekday].prefix(3)))
        case "A": return text(weekdays[f.weekday])
        case "b", "h": return text(String(months[f.month - 1].prefix(3)))
        case "B": return text(months[f.month - 1])
        case "c":
            return text(String(weekdays[f.weekday].prefix(3)) + " " + String(months[f.month - 1].prefix(3)) + " "
                + number(f.day, 2, " ") + " " + hms(f) + " " + String(f.year))
        case "C": return number(f.year / 100, 2)
        case "d": return number(f.day, 2)
        case "D", "x": return number(f.month, 2) + "/" + number(f.day, 2) + "/" + number(f.year % 100, 2)
        case "e": return number(f.day, 2, " ")
        case "F": return String(f.year) + "-" + number(f.month, 2) + "-" + number(f.day, 2)
        case "f": return String(repeating: "0", count: 6 - String(f.microsecond).count) + String(f.microsecond)
        case "H": return number(f.hour, 2)
        case "I": return number(hour12, 2)
        case "j": return number(f.yearDay, 3)
        case "k": return number(f.hour, 2, " ")
        case "l": return number(hour12, 2, " ")
        case "m": return number(f.month, 2)
        case "M": return number(f.minute, 2)
        case "n": return "\n"
        case "p": return f.hour < 12 ? "AM" : "PM"
        case "P": return f.hour < 12 ? "am" : "pm"
        case "r": return number(hour12, 2) + ":" + number(f.minute, 2) + ":" + number(f.second, 2) + " " + (f.hour < 12 ? "AM" : "PM")
        case "R": return number(f.hour, 2) + ":" + number(f.minute, 2)
        case "s": return String(f.epoch)
        case "S": return number(f.second, 2)
        case "t": return "\t"
        case "T", "X": return hms(f)
        case "u": return String(f.weekday == 0 ? 7 : f.weekday)
        case "U": return number(weekU, 2)
        case "w": return String(f.weekday)
        case "W": return number(weekW, 2)
        case "y": return number(f.year % 100, 2)
        case "Y": return String(f.year)
        case "z", "Z": return ""  // naive datetime
        case "%": return "%"
        default: return nil
        }
    }

    private static func hms(_ f: Fields) -> String {
        func two(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return two(f.hour) + ":" + two(f.minute) + ":" + two(f.second)
    }
}
