// Expand iCalendar text from stdin with ical.js (Thunderbird's parser): every occurrence of every VEVENT,
// recurring ones through their RRULE, EXDATEs and RECURRENCE-ID overrides, up to an end given as argv[2]
// (an ISO date-time in UTC). Prints [{uid, summary, status, start, end}] as JSON, starts and ends in UTC.
// Used by tests/web/test_series_feeds.py as an independent reader of a series.
import ICAL from "ical.js";

let input = "";
process.stdin.setEncoding("utf8");
for await (const chunk of process.stdin) input += chunk;

const end = ICAL.Time.fromDateTimeString(process.argv[2].replace("Z", ""), null);
end.zone = ICAL.Timezone.utcTimezone;
const iso = (time) => time.toJSDate().toISOString().replace(".000Z", "Z");

ICAL.TimezoneService.reset();
const calendar = new ICAL.Component(ICAL.parse(input));
for (const zone of calendar.getAllSubcomponents("vtimezone")) ICAL.TimezoneService.register(zone);
const components = calendar.getAllSubcomponents("vevent");
const overrides = components.filter((c) => c.hasProperty("recurrence-id"));
const found = [];
for (const component of components.filter((c) => !c.hasProperty("recurrence-id"))) {
  const event = new ICAL.Event(component);
  for (const override of overrides) {
    if (override.getFirstPropertyValue("uid") === event.uid) event.relateException(override);
  }
  if (!event.isRecurring()) {
    found.push({ uid: event.uid, summary: event.summary, status: component.getFirstPropertyValue("status"),
                 start: iso(event.startDate), end: iso(event.endDate) });
    continue;
  }
  const iterator = event.iterator();
  for (let next = iterator.next(); next && next.compare(end) < 0; next = iterator.next()) {
    const details = event.getOccurrenceDetails(next);
    found.push({ uid: event.uid, summary: details.item.summary,
                 status: details.item.component.getFirstPropertyValue("status"),
                 start: iso(details.startDate), end: iso(details.endDate) });
  }
}
process.stdout.write(JSON.stringify(found));
