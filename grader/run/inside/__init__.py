"""The only part of the grader mounted into the sandbox: the student-code runtime, the wire
format, self-applied limits and the fixed network of the MNIST diagnostic. Nothing here may
import the rest of the grader (a test enforces it)."""
