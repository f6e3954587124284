DROP TABLE gallery_items;
DROP TABLE event_managers;
DROP TABLE events;
DROP TABLE uploads;
DROP TABLE media;
