// Parse iCalendar text from stdin with ical.js (Thunderbird's parser); print what it read as JSON.
// Used by tests/test_calendars_parsers.py and tests/test_calendar_text.py as an independent reader of
// Townhall's output. Stdin is one calendar's text (prints one object), or a JSON array of texts (prints
// an array, one object each): one node process for many calendars.
import ICAL from "ical.js";

let input = "";
process.stdin.setEncoding("utf8");
for await (const chunk of process.stdin) input += chunk;

const wall = (time) => time.toString().slice(0, 19); // the local wall-clock time, no offset

// A TEXT value of a property ical.js does not know (NAME, X-WR-CALNAME: RFC 7986 and an extension)
// comes back as written; it is read here as the TEXT it is.
function text(component, name) {
  const property = component.getFirstProperty(name);
  if (!property) return null;
  const value = property.getFirstValue();
  return property.type === "unknown" ? ICAL.design.icalendar.value.text.fromICAL(value) : value;
}

function address(component, name) {
  const property = component.getFirstProperty(name);
  return property ? { value: property.getFirstValue(), cn: property.getParameter("cn") ?? null } : null;
}

function read(ics) {
  ICAL.TimezoneService.reset(); // each calendar's times are read with its own VTIMEZONEs only
  const calendar = new ICAL.Component(ICAL.parse(ics));
  const timezones = calendar.getAllSubcomponents("vtimezone").map((zone) => {
    ICAL.TimezoneService.register(zone);
    return {
      tzid: zone.getFirstPropertyValue("tzid"),
      parts: zone.getAllSubcomponents().map((part) => ({
        kind: part.name.toUpperCase(),
        rrule: part.getFirstPropertyValue("rrule")?.toString() ?? null,
        rdates: part.getAllProperties("rdate").length,
      })),
    };
  });
  const events = calendar.getAllSubcomponents("vevent").map((component) => {
    const event = new ICAL.Event(component);
    const categories = component.getAllProperties("categories").flatMap((p) => p.getValues());
    return {
      uid: event.uid,
      summary: event.summary,
      sequence: event.sequence,
      status: component.getFirstPropertyValue("status"),
      start_utc: event.startDate.toJSDate().toISOString(),
      end_utc: event.endDate.toJSDate().toISOString(),
      start_wall: wall(event.startDate),
      end_wall: wall(event.endDate),
      tzid: event.startDate.zone ? event.startDate.zone.tzid : null,
      description: event.description,
      location: event.location,
      categories,
      url: component.getFirstPropertyValue("url"),
      organizer: address(component, "organizer"),
      attendee: address(component, "attendee"),
      alarms: component.getAllSubcomponents("valarm").map((alarm) => ({
        action: alarm.getFirstPropertyValue("action"),
        trigger: alarm.getFirstPropertyValue("trigger").toSeconds(),
        description: alarm.getFirstPropertyValue("description"),
      })),
    };
  });
  return {
    method: calendar.getFirstPropertyValue("method"),
    name: text(calendar, "name"),
    x_wr_calname: text(calendar, "x-wr-calname"),
    refresh_interval: calendar.getFirstPropertyValue("refresh-interval")?.toString() ?? null,
    published_ttl: calendar.getFirstPropertyValue("x-published-ttl")?.toString() ?? null,
    timezones,
    events,
  };
}

const batch = input.trimStart().startsWith("[");
process.stdout.write(JSON.stringify(batch ? JSON.parse(input).map(read) : read(input)));
