"""Tools for course authors and instructors: releasing exercises, grading submissions."""
