// Parse iCalendar text from stdin with ical.js (Thunderbird's parser); print each VEVENT as JSON.
// Used by tests/integration/test_ics_parsers.py as an independent reader of Townhall's output.
import ICAL from "ical.js";

let text = "";
process.stdin.setEncoding("utf8");
for await (const chunk of process.stdin) text += chunk;

const calendar = new ICAL.Component(ICAL.parse(text));
for (const zone of calendar.getAllSubcomponents("vtimezone")) {
  ICAL.TimezoneService.register(zone);
}
const wall = (time) => time.toString().slice(0, 19);  // the local wall-clock time, no offset
const events = calendar.getAllSubcomponents("vevent").map((component) => {
  const event = new ICAL.Event(component);
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
  };
});
process.stdout.write(JSON.stringify({
  method: calendar.getFirstPropertyValue("method"),
  events,
}));
