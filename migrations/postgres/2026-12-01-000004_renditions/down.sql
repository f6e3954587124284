DROP TABLE renditions;
